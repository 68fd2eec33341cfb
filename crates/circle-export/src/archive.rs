//! The archive file: a tar stream, optionally gzip- or zstd-compressed
//! (chosen by the file name), written atomically and read as a stream.
//!
//! A `.tar.zst` is written as a series of zstd frames, a new one at every
//! member of at least [`FRAME_MIN`] bytes, followed by a skippable frame
//! holding a seek index (member name → offset of its frame in the file).
//! To `zstd -d` and `tar --zstd` it is one ordinary compressed tar stream
//! (concatenated frames decode as one; skippable frames are skipped); a
//! restore uses the index to read several members at once, each from its
//! own offset ([`Source::seek_index`], [`Source::open_member`]). Archives
//! without an index (older ones, `.tar`, `.tar.gz`) are read as a stream.
//!
//! Any of them may be sealed: written through an age file
//! ([`crate::seal`]), named with a further `.age`. A [`Source`] opens
//! either kind; a sealed one reads as its plaintext, at any offset, so the
//! seek index works the same inside it (its offsets are the plaintext's).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek as _, Write};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::meter::{CountingReader, Meter};
use crate::seal::{FileKey, SealWriter, SealedReader, Sealing, Unsealing};

/// How the tar stream is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// `.tar`.
    None,
    /// `.tar.gz` / `.tgz`: gzip at level 1 (measured: higher levels make
    /// single-threaded gzip the bottleneck of the whole export).
    Gzip,
    /// `.tar.zst`: multithreaded zstd at level 1 (measured on the bench's
    /// data: half the compressor's CPU of level 3 — 0.9 s against 1.8 s
    /// for 240 MiB of BSON, 0.28 s against 0.57 s for 158 MiB of COPY
    /// text — and no larger; the CPU it frees goes to the loads of a
    /// transfer and to pg_dump).
    Zstd,
}

impl Compression {
    /// From the file name: `.tar`, `.tar.gz`/`.tgz`, `.tar.zst`, each
    /// optionally followed by `.age` (sealed; see [`is_sealed_name`]).
    pub fn from_path(path: &Path) -> Result<Compression, String> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let name = name.strip_suffix(".age").unwrap_or(&name);
        if name.ends_with(".tar.zst") || name.ends_with(".tzst") {
            Ok(Compression::Zstd)
        } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Ok(Compression::Gzip)
        } else if name.ends_with(".tar") {
            Ok(Compression::None)
        } else {
            Err(format!(
                "{}: the archive name must end in .tar, .tar.gz or .tar.zst (it chooses the \
                 compression), followed by .age when it is sealed",
                path.display()
            ))
        }
    }

    /// Detects the compression of a tar stream from its first bytes.
    fn sniff(reader: &mut impl Read) -> io::Result<Compression> {
        let mut magic = [0u8; 4];
        let n = read_up_to(reader, &mut magic)?;
        Ok(match &magic[..n] {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
            _ => Compression::None,
        })
    }
}

/// Whether `path`'s name says it is sealed (ends in `.age`).
pub fn is_sealed_name(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().to_ascii_lowercase().ends_with(".age"))
}

/// Checks that an archive about to be written is named as what it is: a
/// sealed one ends in `.age`, and only a sealed one does.
pub fn check_sealed_name(path: &Path, sealed: bool) -> Result<(), String> {
    match (sealed, is_sealed_name(path)) {
        (true, false) => Err(format!(
            "{}: a sealed archive's name ends in .age (e.g. circle-export.tar.zst.age)",
            path.display()
        )),
        (false, true) => Err(format!(
            "{}: a name ending in .age is for a sealed archive: give recipients or a \
             passphrase to seal it, or drop the .age",
            path.display()
        )),
        _ => Ok(()),
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

/// Members this large or larger start a zstd frame of their own and are
/// listed in the seek index.
pub const FRAME_MIN: u64 = 1 << 20;

/// The size of one multithreaded compression job.
const JOB_SIZE: u32 = 1 << 20;

/// The skippable frame's magic number (zstd reserves 0x184D2A50–5F for
/// skippable frames). Not 0x184D2A5E: that one is the Zstandard *seekable
/// format*'s seek table, whose readers would find this index, misread its
/// layout and reject the file.
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

/// The magic archives written before the change above used; still read.
const OLD_SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
/// The last eight bytes of an archive with a seek index.
const INDEX_MAGIC: &[u8; 8] = b"CXSEEK01";
/// The most a seek index may take (a hostile file cannot make a reader
/// allocate more).
const INDEX_MAX: u64 = 16 << 20;

/// Where members start in a `.tar.zst` archive.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeekIndex {
    /// Members with a frame of their own, in archive order.
    pub members: Vec<IndexEntry>,
}

/// One member's place.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexEntry {
    /// The member's path in the archive.
    pub name: String,
    /// The byte offset in the file of the zstd frame that starts with the
    /// member's tar header.
    pub offset: u64,
}

/// The file an archive is written to: plain, or through an age file.
enum Out {
    Plain(BufWriter<File>),
    Sealed(Box<SealWriter<BufWriter<File>>>),
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Out::Plain(w) => w.write(buf),
            Out::Sealed(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Out::Plain(w) => w.flush(),
            Out::Sealed(w) => w.flush(),
        }
    }
}

impl Out {
    /// Seals the last chunk (if sealed) and flushes: the file, complete.
    fn finish(self) -> io::Result<File> {
        let buffered = match self {
            Out::Plain(w) => w,
            Out::Sealed(w) => (*w).finish()?,
        };
        buffered.into_inner().map_err(|e| e.into_error())
    }
}

/// A writer that counts the bytes it passes on.
struct Counted<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The zstd level of `.tar.zst` archives (see [`Compression::Zstd`]).
const ZSTD_LEVEL: i32 = 1;

/// zstd frames, one per large member, and the index of where they start.
struct ZstdSink {
    encoder: Option<zstd::stream::write::Encoder<'static, Counted<Out>>>,
    threads: u32,
    index: SeekIndex,
}

impl ZstdSink {
    fn encoder(
        out: Counted<Out>,
        threads: u32,
    ) -> io::Result<zstd::stream::write::Encoder<'static, Counted<Out>>> {
        let mut encoder = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
        if threads > 1 {
            encoder.multithread(threads)?;
            // Each worker holds its job's input and output: zstd's default
            // job (four windows) made compression ~45 MiB of an export's
            // peak memory; 1 MiB jobs keep it small at the same speed.
            encoder.set_parameter(zstd::stream::raw::CParameter::JobSize(JOB_SIZE))?;
        }
        Ok(encoder)
    }

    fn current(&mut self) -> io::Result<&mut zstd::stream::write::Encoder<'static, Counted<Out>>> {
        self.encoder
            .as_mut()
            .ok_or_else(|| io::Error::other("the archive's compressor is gone after an error"))
    }

    /// Ends the current frame and starts the next one for member `name`.
    fn new_frame(&mut self, name: &str) -> io::Result<()> {
        let encoder = self
            .encoder
            .take()
            .ok_or_else(|| io::Error::other("the archive's compressor is gone after an error"))?;
        let out = encoder.finish()?;
        self.index.members.push(IndexEntry {
            name: name.to_owned(),
            offset: out.written,
        });
        self.encoder = Some(ZstdSink::encoder(out, self.threads)?);
        Ok(())
    }

    /// Ends the last frame and appends the index as a skippable frame:
    /// magic, size, the JSON index, its length (u32 LE) and `CXSEEK01`.
    fn finish(mut self) -> io::Result<Out> {
        let encoder = self
            .encoder
            .take()
            .ok_or_else(|| io::Error::other("the archive's compressor is gone after an error"))?;
        let mut out = encoder.finish()?.inner;
        let json = serde_json::to_vec(&self.index).map_err(io::Error::other)?;
        let payload = json.len() + 4 + INDEX_MAGIC.len();
        let too_big = || io::Error::other("the archive's seek index is too large");
        let payload_len = u32::try_from(payload).map_err(|_| too_big())?;
        let json_len = u32::try_from(json.len()).map_err(|_| too_big())?;
        out.write_all(&SKIPPABLE_MAGIC.to_le_bytes())?;
        out.write_all(&payload_len.to_le_bytes())?;
        out.write_all(&json)?;
        out.write_all(&json_len.to_le_bytes())?;
        out.write_all(INDEX_MAGIC)?;
        Ok(out)
    }
}

enum Sink {
    Plain(Out),
    Gzip(flate2::write::GzEncoder<Out>),
    Zstd(ZstdSink),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Gzip(w) => w.write(buf),
            Sink::Zstd(w) => w.current()?.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Gzip(w) => w.flush(),
            Sink::Zstd(w) => w.current()?.flush(),
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
    /// `threads` compression threads (zstd only), sealed as `seal` says
    /// (the whole file one age file) or plain.
    pub fn create(
        path: &Path,
        compression: Compression,
        threads: u32,
        seal: Option<&Sealing>,
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
        let out = match seal {
            Some(sealing) => Out::Sealed(Box::new(SealWriter::new(out, sealing)?)),
            None => Out::Plain(out),
        };
        let sink = match compression {
            Compression::None => Sink::Plain(out),
            Compression::Gzip => Sink::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::fast(),
            )),
            Compression::Zstd => {
                let out = Counted {
                    inner: out,
                    written: 0,
                };
                Sink::Zstd(ZstdSink {
                    encoder: Some(ZstdSink::encoder(out, threads)?),
                    threads,
                    index: SeekIndex::default(),
                })
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
    /// In a `.tar.zst`, a file of [`FRAME_MIN`] bytes or more starts a
    /// frame of its own, listed in the seek index.
    pub fn append_file(&mut self, name: &str, source: &Path, meter: &Meter) -> io::Result<()> {
        let file = File::open(source)?;
        let size = file.metadata()?.len();
        if size >= FRAME_MIN
            && let Sink::Zstd(sink) = self.builder().get_mut()
        {
            sink.new_frame(name)?;
        }
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
            Sink::Zstd(sink) => sink.finish()?,
        };
        let file = out.finish()?;
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

/// Something readable and seekable: the archive file, or its plaintext.
trait ReadSeek: Read + io::Seek + Send {}
impl<T: Read + io::Seek + Send> ReadSeek for T {}

/// An archive file opened for reading: plain, or sealed and unlocked
/// (its file key kept, so each further reader opens it without the
/// identity or another scrypt run). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Source {
    path: PathBuf,
    key: Option<FileKey>,
}

impl Source {
    /// Opens the archive at `path`. A sealed one (an age file, whatever
    /// its name) needs `unsealing`: without it, or when it does not open
    /// the file, the error says so ([`Error::Sealed`]); a plain archive
    /// ignores it. Reads the header only: the payload is checked as it is
    /// read (or all at once, [`Source::authenticate`]).
    pub fn open(path: &Path, unsealing: Option<&Unsealing>) -> Result<Source, Error> {
        let sealed = |reason| Error::Sealed {
            archive: path.display().to_string(),
            reason,
        };
        let mut file = File::open(path).map_err(Error::io(path.display()))?;
        let key = if crate::seal::is_sealed(&mut file).map_err(Error::io(path.display()))? {
            let unsealing = unsealing.ok_or_else(|| sealed(crate::seal::SealError::KeyNeeded))?;
            let (_, key) = SealedReader::open(file, unsealing).map_err(sealed)?;
            Some(key)
        } else {
            None
        };
        Ok(Source {
            path: path.to_owned(),
            key,
        })
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether it is sealed.
    pub fn is_sealed(&self) -> bool {
        self.key.is_some()
    }

    /// A new reader of the plaintext, from its start.
    fn reader(&self) -> io::Result<Box<dyn ReadSeek>> {
        let file = File::open(&self.path)?;
        Ok(match &self.key {
            Some(key) => Box::new(SealedReader::with_file_key(file, key)?),
            None => Box::new(file),
        })
    }

    /// The length of the archive's plaintext (the file's, unsealed).
    pub fn len(&self) -> io::Result<u64> {
        let mut reader = self.reader()?;
        reader.seek(io::SeekFrom::End(0))
    }

    /// Whether the archive holds no byte.
    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The tar stream's compression, from its first bytes.
    pub fn compression(&self) -> io::Result<Compression> {
        Compression::sniff(&mut self.reader()?)
    }

    /// Decrypts the whole payload of a sealed archive once, start to end,
    /// telling `meter` the bytes as they pass, and fails at the first
    /// chunk that is not authentic: run before a restore writes anything,
    /// it makes sure no byte of the file was changed. Nothing to do for a
    /// plain archive (whose checksums prove nothing about who wrote it).
    pub fn authenticate(&self, meter: &Meter) -> Result<(), Error> {
        let Some(key) = &self.key else {
            return Ok(());
        };
        let file = File::open(&self.path).map_err(Error::io(self.path.display()))?;
        let sealed = |reason| Error::Sealed {
            archive: self.path.display().to_string(),
            reason,
        };
        let mut reader = SealedReader::with_file_key(file, key).map_err(sealed)?;
        reader
            .authenticate(&mut |bytes| meter.add(bytes))
            .map_err(sealed)
    }

    /// The whole archive as a tar stream, whatever its compression,
    /// counting the bytes read (of the plaintext, sealed) into `meter`.
    pub fn open_tar(&self, meter: &Meter) -> io::Result<tar::Archive<Box<dyn Read + Send>>> {
        let compression = self.compression()?;
        let file =
            BufReader::with_capacity(1 << 20, CountingReader::new(self.reader()?, meter.clone()));
        let reader: Box<dyn Read + Send> = match compression {
            Compression::None => Box::new(file),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(file)?),
        };
        Ok(tar::Archive::new(reader))
    }

    /// The seek index at the end of a `.tar.zst` archive, if it
    /// has one (older archives, `.tar` and `.tar.gz` do not). An index that is
    /// present but malformed is `None` too: the archive is then read as a
    /// stream, and every member is still checked against the manifest.
    pub fn seek_index(&self) -> io::Result<Option<SeekIndex>> {
        if self.compression()? != Compression::Zstd {
            return Ok(None);
        }
        let mut file = self.reader()?;
        let len = file.seek(io::SeekFrom::End(0))?;
        let tail = (4 + INDEX_MAGIC.len()) as u64;
        if len < tail + 8 {
            return Ok(None);
        }
        let mut footer = [0u8; 12];
        file.seek(io::SeekFrom::Start(len - tail))?;
        file.read_exact(&mut footer)?;
        if &footer[4..] != INDEX_MAGIC {
            return Ok(None);
        }
        let json_len = u64::from(u32::from_le_bytes([
            footer[0], footer[1], footer[2], footer[3],
        ]));
        if json_len > INDEX_MAX || json_len + tail + 8 > len {
            return Ok(None);
        }
        let start = len - tail - json_len;
        let mut frame = [0u8; 8];
        file.seek(io::SeekFrom::Start(start - 8))?;
        file.read_exact(&mut frame)?;
        let magic = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let size = u64::from(u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]));
        if !(magic == SKIPPABLE_MAGIC || magic == OLD_SKIPPABLE_MAGIC) || size != json_len + tail {
            return Ok(None);
        }
        let mut json = vec![0u8; json_len as usize];
        file.read_exact(&mut json)?;
        let Ok(index) = serde_json::from_slice::<SeekIndex>(&json) else {
            return Ok(None);
        };
        // Offsets must lie inside the compressed data, in order.
        let sound = index
            .members
            .windows(2)
            .all(|pair| pair[0].offset < pair[1].offset)
            && index.members.iter().all(|m| m.offset < start - 8);
        Ok(sound.then_some(index))
    }

    /// Reads member `entry.name` of a `.tar.zst` archive on its own, from
    /// the frame the index says it starts: its tar header is read and checked
    /// (a regular file of that name; a GNU long name is followed), and the
    /// reader returned yields exactly its bytes. Whether they are the right
    /// bytes is for the caller to check against the manifest.
    pub fn open_member(&self, entry: &IndexEntry) -> io::Result<impl Read + Send + use<>> {
        let mut file = self.reader()?;
        file.seek(io::SeekFrom::Start(entry.offset))?;
        let mut decoder =
            zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(1 << 20, file))?;
        let wrong = |what: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: the seek index points at {what}", entry.name),
            )
        };
        let mut long_name: Option<Vec<u8>> = None;
        for _ in 0..2 {
            let mut header = tar::Header::new_old();
            decoder.read_exact(header.as_mut_bytes())?;
            let size = header.size()?;
            match header.entry_type() {
                tar::EntryType::GNULongName if long_name.is_none() && size <= 4096 => {
                    let mut name = vec![0u8; size as usize];
                    decoder.read_exact(&mut name)?;
                    let padding = (512 - size % 512) % 512;
                    io::copy(&mut (&mut decoder).take(padding), &mut io::sink())?;
                    while name.last() == Some(&0) {
                        name.pop();
                    }
                    long_name = Some(name);
                }
                tar::EntryType::Regular => {
                    let name = long_name.unwrap_or_else(|| header.path_bytes().into_owned());
                    if name != entry.name.as_bytes() {
                        return Err(wrong(format!(
                            "member {:?}",
                            String::from_utf8_lossy(&name)
                        )));
                    }
                    return Ok(decoder.take(size));
                }
                other => return Err(wrong(format!("a {other:?} entry"))),
            }
        }
        Err(wrong("two long names in a row".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::{ArchiveWriter, Compression};

    #[test]
    fn the_seek_index_frame_is_not_the_seekable_formats_and_old_archives_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..(super::FRAME_MIN as usize + 10))
            .map(|i| i as u8)
            .collect();
        std::fs::write(dir.path().join("a"), &big).unwrap();
        let out = dir.path().join("x.tar.zst");
        let mut writer = ArchiveWriter::create(&out, Compression::Zstd, 1, None).unwrap();
        writer.append_bytes("manifest.json", b"{}").unwrap();
        writer
            .append_file(
                "postgres/a.sql",
                &dir.path().join("a"),
                &crate::meter::Meter::default(),
            )
            .unwrap();
        writer.finish().unwrap();
        let mut bytes = std::fs::read(&out).unwrap();
        let seekable = 0x184D_2A5E_u32.to_le_bytes();
        let ours = 0x184D_2A50_u32.to_le_bytes();
        let at = bytes
            .windows(4)
            .rposition(|w| w == ours)
            .expect("the index's skippable frame");
        assert!(!bytes.windows(4).any(|w| w == seekable));
        assert!(
            super::Source::open(&out, None)
                .unwrap()
                .seek_index()
                .unwrap()
                .is_some()
        );
        // An archive written with the seekable format's magic still reads.
        bytes[at..at + 4].copy_from_slice(&seekable);
        std::fs::write(&out, &bytes).unwrap();
        assert!(
            super::Source::open(&out, None)
                .unwrap()
                .seek_index()
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn large_members_start_frames_of_their_own_and_are_read_alone_or_as_one_stream() {
        let identity = crate::seal::Identity::generate().unwrap();
        let sealing = crate::seal::Sealing::Recipients(vec![identity.recipient()]);
        let unsealing = crate::seal::Unsealing::Identities(vec![identity]);
        members_are_read_alone_or_as_one_stream("x.tar.zst", None, None);
        // Sealed: the same index, its offsets the plaintext's.
        members_are_read_alone_or_as_one_stream("x.tar.zst.age", Some(&sealing), Some(&unsealing));
    }

    fn members_are_read_alone_or_as_one_stream(
        name: &str,
        sealing: Option<&crate::seal::Sealing>,
        unsealing: Option<&crate::seal::Unsealing>,
    ) {
        use std::io::Read as _;
        let dir = tempfile::tempdir().unwrap();
        let big = |seed: u8| -> Vec<u8> {
            (0..(super::FRAME_MIN as usize + 12_345))
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect()
        };
        let (a, b) = (big(1), big(2));
        std::fs::write(dir.path().join("a"), &a).unwrap();
        std::fs::write(dir.path().join("b"), &b).unwrap();
        let out = dir.path().join(name);
        let mut writer = ArchiveWriter::create(&out, Compression::Zstd, 2, sealing).unwrap();
        writer.append_bytes("manifest.json", b"{}").unwrap();
        let meter = crate::meter::Meter::default();
        writer
            .append_file("postgres/a.sql", &dir.path().join("a"), &meter)
            .unwrap();
        writer.append_bytes("small", b"tiny").unwrap();
        let long = format!("postgres/{}.sql", "l".repeat(150));
        writer
            .append_file(&long, &dir.path().join("b"), &meter)
            .unwrap();
        writer.finish().unwrap();

        let source = super::Source::open(&out, unsealing).unwrap();
        assert_eq!(source.is_sealed(), sealing.is_some());
        let index = source.seek_index().unwrap().expect("an index");
        let names: Vec<&str> = index.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["postgres/a.sql", long.as_str()]);
        for (entry, want) in index.members.iter().zip([&a, &b]) {
            let mut got = Vec::new();
            source
                .open_member(entry)
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            assert!(got == *want, "{} read alone differs", entry.name);
        }
        // An index entry naming another member is refused.
        let wrong = super::IndexEntry {
            name: "postgres/other.sql".to_owned(),
            offset: index.members[0].offset,
        };
        assert!(source.open_member(&wrong).is_err());
        // As one stream (what tar --zstd and older readers see): every
        // member, the index frame skipped.
        let mut archive = source.open_tar(&meter).unwrap();
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            seen.push((entry.path().unwrap().display().to_string(), bytes.len()));
        }
        assert_eq!(
            seen,
            [
                ("manifest.json".to_owned(), 2),
                ("postgres/a.sql".to_owned(), a.len()),
                ("small".to_owned(), 4),
                (long.clone(), b.len()),
            ]
        );
        if sealing.is_some() {
            // Without a key it does not open; nothing reads it as plain.
            assert!(super::Source::open(&out, None).unwrap_err().is_key_needed());
            return;
        }
        // A file without the footer has no index.
        let plain = dir.path().join("y.tar.zst");
        let bytes = std::fs::read(&out).unwrap();
        std::fs::write(&plain, &bytes[..bytes.len() - 3]).unwrap();
        let cut = super::Source::open(&plain, None).unwrap();
        assert_eq!(cut.seek_index().unwrap(), None);
    }

    #[test]
    fn a_file_or_link_planted_at_the_partial_path_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("export.tar");
        let partial = dir.path().join("export.tar.partial");
        std::fs::write(&partial, b"planted").unwrap();
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o644)).unwrap();
        ArchiveWriter::create(&out, Compression::None, 1, None)
            .unwrap()
            .finish()
            .unwrap();
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the planted file's mode survived");

        let elsewhere = dir.path().join("victim");
        std::fs::write(&elsewhere, b"keep me").unwrap();
        std::os::unix::fs::symlink(&elsewhere, &partial).unwrap();
        ArchiveWriter::create(&out, Compression::None, 1, None)
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!(std::fs::read(&elsewhere).unwrap(), b"keep me");
    }
}
