//! Finding values by pattern in every text column of a database: how the
//! contexts cutover check (`vault-transit migrate verify`) finds the
//! ciphertexts CircleCI's contexts service stored, without knowing its
//! schema.

use crate::Error;
use crate::sql::quote_ident;

/// Values of one column that match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// `schema.table.column`.
    pub column: String,
    /// The matching values (not to be printed: they may be secrets'
    /// ciphertexts).
    pub values: Vec<String>,
}

/// Every value matching the POSIX regular expression `pattern` (`~`) in
/// every `text`, `varchar` and `char` column of the tables of `client`'s
/// database, outside the system schemas; columns with no match are left
/// out. `server` names the server in errors.
pub async fn matching_values(
    client: &tokio_postgres::Client,
    server: &str,
    pattern: &str,
) -> Result<Vec<Found>, Error> {
    let observe = |what: &str| {
        let what = what.to_owned();
        let server = server.to_owned();
        move |source: tokio_postgres::Error| Error::Observe {
            detail: crate::describe_pg_error(&source),
            what,
            server,
            source,
        }
    };
    let columns = client
        .query(
            "SELECT c.table_schema, c.table_name, c.column_name \
             FROM information_schema.columns c \
             JOIN information_schema.tables t \
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
             WHERE t.table_type = 'BASE TABLE' \
               AND c.table_schema NOT IN ('pg_catalog', 'information_schema') \
               AND c.data_type IN ('text', 'character varying', 'character') \
             ORDER BY 1, 2, 3",
            &[],
        )
        .await
        .map_err(observe("the text columns"))?;
    let mut out = Vec::new();
    for row in columns {
        let (schema, table, column): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        let name = format!("{schema}.{table}.{column}");
        let query = format!(
            "SELECT {col} FROM {schema}.{table} WHERE {col} ~ $1",
            col = quote_ident(&column),
            schema = quote_ident(&schema),
            table = quote_ident(&table),
        );
        let rows = client
            .query(&query, &[&pattern])
            .await
            .map_err(observe(&format!("column {name}")))?;
        let values: Vec<String> = rows.iter().filter_map(|r| r.get(0)).collect();
        if !values.is_empty() {
            out.push(Found {
                column: name,
                values,
            });
        }
    }
    Ok(out)
}
