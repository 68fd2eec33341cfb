//! The archive file: a tar stream, optionally gzip- or zstd-compressed
//! (chosen by the file name), written atomically and read as a stream.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::meter::{CountingReader, Meter};

/// How the tar stream is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// `.tar`.
    None,
    /// `.tar.gz` / `.tgz`: gzip at level 1 (measured: higher levels make
    /// single-threaded gzip the bottleneck of the whole export).
    Gzip,
    /// `.tar.zst`: multithreaded zstd at level 3.
    Zstd,
}

impl Compression {
    /// From the file name: `.tar`, `.tar.gz`/`.tgz`, `.tar.zst`.
    pub fn from_path(path: &Path) -> Result<Compression, String> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.ends_with(".tar.zst") || name.ends_with(".tzst") {
            Ok(Compression::Zstd)
        } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Ok(Compression::Gzip)
        } else if name.ends_with(".tar") {
            Ok(Compression::None)
        } else {
            Err(format!(
                "{}: the archive name must end in .tar, .tar.gz or .tar.zst (it chooses the \
                 compression)",
                path.display()
            ))
        }
    }

    /// Detects the compression of an existing file from its first bytes.
    pub fn sniff(path: &Path) -> io::Result<Compression> {
        let mut magic = [0u8; 4];
        let mut file = File::open(path)?;
        let n = read_up_to(&mut file, &mut magic)?;
        Ok(match &magic[..n] {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
            _ => Compression::None,
        })
    }
}

fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

enum Sink {
    Plain(BufWriter<File>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<File>>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Gzip(w) => w.write(buf),
            Sink::Zstd(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Gzip(w) => w.flush(),
            Sink::Zstd(w) => w.flush(),
        }
    }
}

/// Writes an archive to `<path>.partial` and renames it into place on
/// [`ArchiveWriter::finish`]; dropped unfinished, it removes the partial
/// file, so a failed export never leaves something that looks complete.
pub struct ArchiveWriter {
    builder: Option<tar::Builder<Sink>>,
    partial: PathBuf,
    path: PathBuf,
}

impl ArchiveWriter {
    /// Starts an archive at `path` with `compression`, using up to
    /// `threads` compression threads (zstd only).
    pub fn create(
        path: &Path,
        compression: Compression,
        threads: u32,
    ) -> io::Result<ArchiveWriter> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        // A file (or link) planted at the partial path would keep its owner
        // and mode through the rename: remove it, then create ours anew.
        match std::fs::remove_file(&partial) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let file = {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&partial)?
        };
        let out = BufWriter::with_capacity(1 << 20, file);
        let sink = match compression {
            Compression::None => Sink::Plain(out),
            Compression::Gzip => Sink::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::fast(),
            )),
            Compression::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(out, 3)?;
                if threads > 1 {
                    encoder.multithread(threads)?;
                }
                Sink::Zstd(encoder)
            }
        };
        let mut builder = tar::Builder::new(sink);
        builder.mode(tar::HeaderMode::Deterministic);
        Ok(ArchiveWriter {
            builder: Some(builder),
            partial,
            path: path.to_owned(),
        })
    }

    fn builder(&mut self) -> &mut tar::Builder<Sink> {
        self.builder
            .as_mut()
            .expect("archive writer used after finish")
    }

    /// Appends `bytes` as the file `name` (mode 0600).
    pub fn append_bytes(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let mut header = header(bytes.len() as u64);
        self.builder().append_data(&mut header, name, bytes)
    }

    /// Appends the file at `source` as `name` (mode 0600), streaming it.
    pub fn append_file(&mut self, name: &str, source: &Path, meter: &Meter) -> io::Result<()> {
        let file = File::open(source)?;
        let size = file.metadata()?.len();
        let mut header = header(size);
        let reader =
            CountingReader::new(BufReader::with_capacity(1 << 20, file), meter.clone()).take(size);
        self.builder().append_data(&mut header, name, reader)
    }

    /// Appends a directory entry `name` (mode 0700).
    pub fn append_dir(&mut self, name: &str) -> io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o700);
        header.set_size(0);
        header.set_mtime(0);
        let name = format!("{}/", name.trim_end_matches('/'));
        self.builder().append_data(&mut header, name, io::empty())
    }

    /// Completes the archive, syncs it to disk and renames it into place.
    pub fn finish(mut self) -> io::Result<PathBuf> {
        let builder = self.builder.take().expect("finish called once");
        let sink = builder.into_inner()?;
        let out = match sink {
            Sink::Plain(w) => w,
            Sink::Gzip(w) => w.finish()?,
            Sink::Zstd(w) => w.finish()?,
        };
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&self.partial, &self.path)?;
        Ok(self.path.clone())
    }
}

impl Drop for ArchiveWriter {
    fn drop(&mut self) {
        if self.builder.is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

fn header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header
}

/// Opens an archive for reading, whatever its compression, counting the
/// bytes of the file read into `meter`.
pub fn open(path: &Path, meter: &Meter) -> io::Result<tar::Archive<Box<dyn Read + Send>>> {
    let compression = Compression::sniff(path)?;
    let file = BufReader::with_capacity(
        1 << 20,
        CountingReader::new(File::open(path)?, meter.clone()),
    );
    let reader: Box<dyn Read + Send> = match compression {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(file)?),
    };
    Ok(tar::Archive::new(reader))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::{ArchiveWriter, Compression};

    #[test]
    fn a_file_or_link_planted_at_the_partial_path_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("export.tar");
        let partial = dir.path().join("export.tar.partial");
        std::fs::write(&partial, b"planted").unwrap();
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o644)).unwrap();
        ArchiveWriter::create(&out, Compression::None, 1)
            .unwrap()
            .finish()
            .unwrap();
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the planted file's mode survived");

        let elsewhere = dir.path().join("victim");
        std::fs::write(&elsewhere, b"keep me").unwrap();
        std::os::unix::fs::symlink(&elsewhere, &partial).unwrap();
        ArchiveWriter::create(&out, Compression::None, 1)
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!(std::fs::read(&elsewhere).unwrap(), b"keep me");
    }
}
