//! Compressed CSV input (`compression` of `filesystem.csv_extractor`): gzip, bzip2, xz and zip,
//! decoded while reading (never the whole file in memory) by pure-Rust decoders.
//!
//! `infer` (the default, as in pandas) picks the codec from the file name's suffix: `.gz`,
//! `.bz2`, `.zip`, `.xz` (any case); other names are read as they are. A gzip or bzip2 file of
//! several concatenated streams reads as their concatenation, like `gzip -d`. A zip archive must
//! hold exactly one file (directories and `__MACOSX/` entries aside), stored or deflated, as
//! pandas requires.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use osiris_engine::driver::DriverError;

use crate::common::{invalid, open_input};

/// The `compression` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    /// By the file name's suffix.
    Infer,
    None,
    Gzip,
    Bz2,
    Zip,
    Xz,
}

/// The decoded bytes of an input file.
pub(crate) type DecodedInput = Box<dyn Read + Send>;

const BUFFER: usize = 1 << 16;

impl Compression {
    pub(crate) fn parse(value: &str) -> Result<Compression, DriverError> {
        Ok(match value.trim().to_ascii_lowercase().as_str() {
            "infer" => Compression::Infer,
            "none" => Compression::None,
            "gzip" => Compression::Gzip,
            "bz2" => Compression::Bz2,
            "zip" => Compression::Zip,
            "xz" => Compression::Xz,
            _ => {
                return Err(invalid(format!("unsupported compression '{value}'"))
                    .with_hint("use infer (default: by the file suffix), gzip, bz2, zip, xz or none"));
            }
        })
    }

    /// The codec for `path`: `Infer` resolved by its suffix.
    fn for_path(self, path: &Path) -> Compression {
        if self != Compression::Infer {
            return self;
        }
        let suffix = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
        match suffix.as_deref() {
            Some("gz") => Compression::Gzip,
            Some("bz2") => Compression::Bz2,
            Some("zip") => Compression::Zip,
            Some("xz") => Compression::Xz,
            _ => Compression::None,
        }
    }
}

/// Opens `path` and decodes it as `compression` says.
pub(crate) fn open_decoded(path: &Path, compression: Compression) -> Result<DecodedInput, DriverError> {
    let file = open_input(path)?;
    Ok(match compression.for_path(path) {
        Compression::None | Compression::Infer => Box::new(file),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(BUFFER, file))),
        Compression::Bz2 => Box::new(bzip2::read::MultiBzDecoder::new(BufReader::with_capacity(BUFFER, file))),
        Compression::Xz => Box::new(lzma_rust2::XzReader::new(BufReader::with_capacity(BUFFER, file), true)),
        Compression::Zip => open_zip_member(path, file)?,
    })
}

fn zip_error(path: &Path, message: impl std::fmt::Display) -> DriverError {
    DriverError::new("extract.io_error", format!("{}: {message}", path.display()))
        .with_hint("check the archive, or set `compression` to the file's real format (none for a plain CSV)")
}

/// The one file of a zip archive, streamed from its place in the archive.
fn open_zip_member(path: &Path, file: File) -> Result<DecodedInput, DriverError> {
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| zip_error(path, format!("not a readable zip archive: {e}")))?;
    let mut members = Vec::new();
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(|e| zip_error(path, e))?;
        let name = entry.name().map(|n| n.into_owned()).unwrap_or_default();
        if !entry.is_dir() && !name.starts_with("__MACOSX/") {
            members.push((i, name));
        }
    }
    let index = match members.as_slice() {
        [(i, _)] => *i,
        [] => return Err(zip_error(path, "the zip archive holds no file")),
        many => {
            let names: Vec<&str> = many.iter().take(5).map(|(_, n)| n.as_str()).collect();
            return Err(zip_error(
                path,
                format!(
                    "the zip archive holds {} files ({}); it must hold exactly one CSV file",
                    many.len(),
                    names.join(", ")
                ),
            ));
        }
    };
    let entry = archive.by_index_raw(index).map_err(|e| zip_error(path, e))?;
    if entry.encrypted() {
        return Err(zip_error(path, "the zip member is encrypted"));
    }
    let method = entry.compression();
    let deflated = match method {
        zip::CompressionMethod::Stored => false,
        zip::CompressionMethod::Deflated => true,
        other => {
            return Err(zip_error(
                path,
                format!("the zip member is compressed with {other}; only stored and deflate are supported"),
            ));
        }
    };
    let start = entry.data_start().ok_or_else(|| zip_error(path, "cannot locate the zip member's data"))?;
    let (compressed, size, crc) = (entry.compressed_size(), entry.size(), entry.crc32());
    drop(entry);
    let mut file = archive.into_inner();
    file.seek(SeekFrom::Start(start)).map_err(|e| zip_error(path, e))?;
    let raw = BufReader::with_capacity(BUFFER, file).take(compressed);
    let data: DecodedInput = if deflated { Box::new(flate2::read::DeflateDecoder::new(raw)) } else { Box::new(raw) };
    Ok(Box::new(Checked { inner: data, hasher: crc32fast::Hasher::new(), read: 0, size, crc }))
}

/// Checks the CRC-32 and size the zip directory records once the member has been read.
struct Checked {
    inner: DecodedInput,
    hasher: crc32fast::Hasher,
    read: u64,
    size: u64,
    crc: u32,
}

impl Read for Checked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.hasher.update(&buf[..n]);
            self.read += n as u64;
        } else if !buf.is_empty() && (self.read != self.size || self.hasher.clone().finalize() != self.crc) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the zip member is corrupt (its size or CRC-32 does not match the archive's directory)",
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infer_goes_by_the_suffix() {
        let c = Compression::Infer;
        assert_eq!(c.for_path(Path::new("a/b.csv.gz")), Compression::Gzip);
        assert_eq!(c.for_path(Path::new("b.CSV.BZ2")), Compression::Bz2);
        assert_eq!(c.for_path(Path::new("b.zip")), Compression::Zip);
        assert_eq!(c.for_path(Path::new("b.csv.xz")), Compression::Xz);
        assert_eq!(c.for_path(Path::new("b.csv")), Compression::None);
        assert_eq!(Compression::None.for_path(Path::new("b.gz")), Compression::None);
        assert!(Compression::parse("lz4").is_err());
        assert_eq!(Compression::parse("GZIP").unwrap(), Compression::Gzip);
    }
}
