//! Reading a provider CLI's config file (`cli.toml`, doctl's and scw's `config.yaml`), written
//! once: only a regular file (a FIFO would block), under a size cap, checked again on what was
//! opened; a missing file is no error, as for the CLIs themselves. Callers never echo contents.

use std::io::Read as _;
use std::path::Path;

/// Why a config file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not a regular file.
    #[error("not a regular file")]
    NotAFile,
    /// Larger than the cap.
    #[error("larger than {0} bytes")]
    TooLarge(u64),
}

/// The file's text, `None` when there is no file.
pub fn read_capped(path: &Path, max_bytes: u64) -> Result<Option<String>, ReadError> {
    // Checked before opening: opening a FIFO would block.
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    check(&meta, max_bytes)?;
    let file = std::fs::File::open(path)?;
    // And again on what was opened, in case the path changed in between.
    check(&file.metadata()?, max_bytes)?;
    let mut text = String::new();
    file.take(max_bytes + 1).read_to_string(&mut text)?;
    if text.len() as u64 > max_bytes {
        return Err(ReadError::TooLarge(max_bytes));
    }
    Ok(Some(text))
}

fn check(meta: &std::fs::Metadata, max_bytes: u64) -> Result<(), ReadError> {
    if !meta.is_file() {
        return Err(ReadError::NotAFile);
    }
    if meta.len() > max_bytes {
        return Err(ReadError::TooLarge(max_bytes));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_small_files_only_and_missing_is_none() {
        let dir = std::env::temp_dir().join(format!("bootstrap-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c");
        std::fs::write(&f, "token = 1").unwrap();
        assert_eq!(read_capped(&f, 100).unwrap().as_deref(), Some("token = 1"));
        assert!(matches!(read_capped(&f, 3), Err(ReadError::TooLarge(3))));
        assert!(matches!(read_capped(&dir, 100), Err(ReadError::NotAFile)));
        assert!(read_capped(&dir.join("missing"), 100).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
