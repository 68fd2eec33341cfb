//! What can go wrong, naming the database, collection or file.

/// An export, verify or restore error. Messages name what failed (server,
/// database, collection, table, archive entry) and never hold a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// The file or directory.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// MongoDB refused or failed.
    #[error("MongoDB, {what}: {}", describe_mongo(source))]
    Mongo {
        /// The database/collection and operation.
        what: String,
        /// The driver's error.
        source: Box<mongodb::error::Error>,
    },
    /// A PostgreSQL client program failed.
    #[error("PostgreSQL, {what}: {detail}")]
    Postgres {
        /// The database and program.
        what: String,
        /// Its stderr (last lines) or exit status.
        detail: String,
    },
    /// The archive is damaged or is not what it claims. Nothing from a
    /// damaged part was written; parts verified on their own before the
    /// damage was found may have been restored (the list says which).
    #[error("the archive is damaged or incomplete; nothing from a damaged part was restored:\n  - {}", .0.join("\n  - "))]
    Damaged(Vec<String>),
    /// The target is not empty and `--drop` was not given; nothing was
    /// written.
    #[error(
        "the target already holds data (drop it first to replace it); nothing was restored:\n  - {}",
        .0.join("\n  - ")
    )]
    NotEmpty(Vec<String>),
    /// A sealed archive could not be opened (no key given, or none that
    /// opens it) or is not authentic (changed or cut after it was
    /// sealed). Nothing was written.
    #[error("{archive}: {reason}")]
    Sealed {
        /// The archive.
        archive: String,
        /// Why (in the message already, so not a `source`: a cause chain
        /// would print it twice).
        reason: crate::seal::SealError,
    },
    /// An old MongoDB server (3.6 to 4.2, read without the driver)
    /// refused, failed or answered something unreadable.
    #[error("MongoDB {server}, {what}: {source}")]
    Wire {
        /// The server (`host:port`, or the URI's hosts).
        server: String,
        /// The database/collection and operation.
        what: String,
        /// What went wrong.
        source: crate::wire::WireError,
    },
    /// Bad input found before anything was touched: a setting, a path, a
    /// name, or archive content that cannot be read.
    #[error("{0}")]
    Invalid(String),
    /// The archive holds data of a kind no target was given for; nothing
    /// was written.
    #[error("the archive holds {count} {items}: give a {server} target")]
    NoTarget {
        /// `MongoDB` or `PostgreSQL`.
        server: &'static str,
        /// How many.
        count: usize,
        /// `MongoDB collections`, `PostgreSQL databases`.
        items: &'static str,
    },
    /// A database asked for is not on the server.
    #[error("{server} database {database:?} does not exist on {on} (it has: {})", .has.join(", "))]
    NoSuchDatabase {
        /// `MongoDB` or `PostgreSQL`.
        server: &'static str,
        /// The database asked for.
        database: String,
        /// The server, as messages name it.
        on: String,
        /// The databases it has.
        has: Vec<String>,
    },
    /// A source collection changed while it was being exported (CircleCI's
    /// services were still running).
    #[error(
        "MongoDB {server}, {what}: the cursor gave {read} documents but the collection holds \
         {counted}: something wrote to it during the export (stop CircleCI's services first)"
    )]
    SourceChanged {
        /// The server.
        server: String,
        /// The database and collection.
        what: String,
        /// Documents read.
        read: u64,
        /// Documents counted afterwards.
        counted: u64,
    },
    /// A write to the target replica set failed for a reason other than a
    /// lost primary (which is waited for).
    #[error("{what}: {detail}")]
    TargetWrite {
        /// The write (`insert into db.collection`, `reading back …`).
        what: String,
        /// The server's answer.
        detail: String,
    },
    /// The target replica set had no primary for longer than the failover
    /// wait; a rerun resumes where it stopped.
    #[error(
        "{what}: no primary for {waited_secs} s ({lost}): the replica set cannot elect one — \
         bring its members back (check with `mongo-rs-setup status`), then run the same restore \
         again: it resumes where it stopped, dropping nothing"
    )]
    NoPrimary {
        /// The write that waited.
        what: String,
        /// How long it waited.
        waited_secs: u64,
        /// How the primary was lost.
        lost: String,
    },
    /// A document the target already holds under an `_id` differs from the
    /// archive's; nothing of it was overwritten.
    #[error(
        "{what}: the document with _id {id} is already there and differs from the archive's; \
         nothing of it was overwritten — drop what the target holds first to replace it"
    )]
    Conflicting {
        /// The collection.
        what: String,
        /// The `_id`, as extended JSON.
        id: String,
    },
    /// A worker of this crate's own failed (a bug, not the input): what.
    #[error("{what}")]
    Internal {
        /// What failed.
        what: String,
    },
}

impl Error {
    /// Whether the archive was refused as not opening with the key given,
    /// or as changed after it was sealed (exit 3 at the command line),
    /// rather than for a failure to read or write.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Error::Sealed { reason, .. } if reason.is_refusal())
    }

    /// Whether a sealed archive was given without any key to open it (a
    /// usage error at the command line).
    pub fn is_key_needed(&self) -> bool {
        matches!(
            self,
            Error::Sealed {
                reason: crate::seal::SealError::KeyNeeded,
                ..
            }
        )
    }
}

impl Error {
    pub(crate) fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.to_string();
        move |source| Error::Io { what, source }
    }

    pub(crate) fn mongo(
        what: impl std::fmt::Display,
    ) -> impl FnOnce(mongodb::error::Error) -> Error {
        let what = what.to_string();
        move |source| Error::Mongo {
            what,
            source: Box::new(source),
        }
    }
}

/// A driver error in a line: for a write that failed, the server's code,
/// code name and message of the first write error (and how many there
/// were) instead of the driver's dump of the whole batch result.
pub(crate) fn describe_mongo(error: &mongodb::error::Error) -> String {
    use mongodb::error::ErrorKind;
    let first_write_error = |errors: &[mongodb::error::IndexedWriteError]| {
        errors.first().map(|e| {
            let more = if errors.len() > 1 {
                format!(" (and {} more)", errors.len() - 1)
            } else {
                String::new()
            };
            // mongod's writeErrors carry no codeName; the driver may fill it.
            let code = match e.code_name.as_deref() {
                Some(name) if !name.is_empty() => format!("{} {name}", e.code),
                _ => e.code.to_string(),
            };
            format!(
                "{} (code {code}) at document {} of the batch{more}",
                e.message, e.index
            )
        })
    };
    match &*error.kind {
        ErrorKind::InsertMany(failure) => {
            if let Some(text) = failure.write_errors.as_deref().and_then(first_write_error) {
                return text;
            }
            if let Some(wc) = &failure.write_concern_error {
                return format!(
                    "write concern not satisfied: {} (code {} {})",
                    wc.message, wc.code, wc.code_name
                );
            }
            "the batch failed".to_owned()
        }
        ErrorKind::Command(command) => format!(
            "{} (code {} {})",
            command.message, command.code, command.code_name
        ),
        // The kind alone: the driver's full text adds its labels and
        // an empty source.
        ErrorKind::Io(e) => format!("network error: {e}"),
        _ => error.kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use bson::doc;

    use super::{Error, describe_mongo};

    #[tokio::test]
    async fn a_failed_batch_is_one_line_with_the_servers_code_not_a_dump() {
        let tools = ha_lab::Toolbox::discover(std::env::vars_os());
        let member =
            ha_lab::MongoMember::start(&tools, ha_lab::MongoMemberOptions::default()).unwrap();
        let client = mongodb::Client::with_uri_str(format!(
            "mongodb://localhost:{}/?directConnection=true",
            member.port()
        ))
        .await
        .unwrap();
        let collection = client.database("t").collection::<bson::RawDocumentBuf>("c");
        let raw = |id: i32| bson::RawDocumentBuf::from_document(&doc! {"_id": id}).unwrap();
        collection.insert_one(raw(1)).await.unwrap();
        let error = collection
            .insert_many([raw(2), raw(1), raw(3), raw(1)])
            .ordered(false)
            .await
            .unwrap_err();
        let text = describe_mongo(&error);
        assert!(
            text.contains("E11000") && text.contains("(code 11000"),
            "{text}"
        );
        assert!(
            text.contains("at document 1 of the batch (and 1 more)"),
            "{text}"
        );
        assert!(
            !text.contains("RawDocumentBuf") && text.lines().count() == 1,
            "{text}"
        );
    }

    #[test]
    fn typed_errors_say_what_and_where_as_the_text_errors_did() {
        let no_target = Error::NoTarget {
            server: "MongoDB",
            count: 3,
            items: "MongoDB collections",
        };
        assert_eq!(
            no_target.to_string(),
            "the archive holds 3 MongoDB collections: give a MongoDB target"
        );
        let missing = Error::NoSuchDatabase {
            server: "PostgreSQL",
            database: "circle".to_owned(),
            on: "pg.internal:5432".to_owned(),
            has: vec!["postgres".to_owned(), "vms".to_owned()],
        };
        assert_eq!(
            missing.to_string(),
            "PostgreSQL database \"circle\" does not exist on pg.internal:5432 (it has: postgres, \
             vms)"
        );
        let waited = Error::NoPrimary {
            what: "insert into circle_ghe.builds".to_owned(),
            waited_secs: 60,
            lost: "no answer within 60 s".to_owned(),
        };
        let text = waited.to_string();
        assert!(
            text.starts_with("insert into circle_ghe.builds: no primary for 60 s (no answer"),
            "{text}"
        );
        assert!(text.ends_with("dropping nothing"), "{text}");
    }
}
