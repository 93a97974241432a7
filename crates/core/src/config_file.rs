//! Reading a local file, written once for every file the tool reads: the provider CLIs' config
//! files (`cli.toml`, doctl's and scw's `config.yaml`), `--ssh-key`, `--template` and the state
//! files. Only a regular file, under a size cap, checked on what was opened (opened non-blocking,
//! so a FIFO cannot hang the run, and `/dev/zero` cannot fill memory); state files are opened
//! without following a symlink. A missing file is `Ok(None)`, as for the CLIs themselves.
//! Callers never echo contents.

use std::fs::OpenOptions;
use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Why a local file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Reading failed; also a symlink where [`Symlinks::Refuse`] was asked
    /// ([`is_symlink`](ReadError::is_symlink)) and content that is not UTF-8 text.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not a regular file (a directory, a FIFO, a device).
    #[error("not a regular file")]
    NotAFile,
    /// Larger than the cap.
    #[error("larger than {0} bytes")]
    TooLarge(u64),
}

/// The message of a refused symlink.
const SYMLINK: &str = "a symlink, which bootstrap does not follow here";

impl ReadError {
    /// True when the file was a symlink and [`Symlinks::Refuse`] was asked.
    pub fn is_symlink(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.to_string() == SYMLINK)
    }
}

/// Whether the last component of a path may be a symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symlinks {
    /// Follow it: a file the user named (`--ssh-key ~/.ssh/id.pub` is often a link).
    Follow,
    /// Refuse it (`O_NOFOLLOW`): a file in the state directory, which only the tool writes.
    Refuse,
}

/// The text of a provider CLI's config file, `None` when there is no file.
pub fn read_capped(path: &Path, max_bytes: u64) -> Result<Option<String>, ReadError> {
    read_text(path, max_bytes, Symlinks::Follow)
}

/// The text of a local file of at most `max_bytes`, `None` when there is no file.
///
/// The file is opened with `O_NONBLOCK` (a FIFO does not block the open) and checked on the
/// opened descriptor, so what is read is what was checked, whatever the path points to later.
pub fn read_text(
    path: &Path,
    max_bytes: u64,
    symlinks: Symlinks,
) -> Result<Option<String>, ReadError> {
    let mut flags = libc::O_NONBLOCK;
    if symlinks == Symlinks::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // O_NOFOLLOW on a symlink fails with ELOOP.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) && symlinks == Symlinks::Refuse => {
            return Err(std::io::Error::other(SYMLINK).into());
        }
        Err(e) => return Err(e.into()),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile);
    }
    if meta.len() > max_bytes {
        return Err(ReadError::TooLarge(max_bytes));
    }
    // Capacity from the checked size: one allocation, so a secret is not copied on growth.
    let capacity = usize::try_from(meta.len()).unwrap_or(0);
    let mut bytes = Vec::with_capacity(capacity);
    // The file may grow after the check: never read more than the cap.
    file.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        bytes.fill(0);
        return Err(ReadError::TooLarge(max_bytes));
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Some(text)),
        Err(e) => {
            // May be a secret that is not text: wipe it.
            e.into_bytes().fill(0);
            Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text").into())
        }
    }
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

    // See: issue 13, finding 10 (a FIFO hung the run, /dev/zero filled memory).
    #[test]
    fn fifo_device_and_binary_files_are_refused_at_once() {
        let dir = tempfile_dir("hostile");
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let started = std::time::Instant::now();
        assert!(matches!(
            read_text(&fifo, 100, Symlinks::Follow),
            Err(ReadError::NotAFile)
        ));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert!(matches!(
            read_text(Path::new("/dev/zero"), 100, Symlinks::Follow),
            Err(ReadError::NotAFile)
        ));
        let bin = dir.join("bin");
        std::fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
        let err = read_text(&bin, 100, Symlinks::Follow).unwrap_err();
        assert_eq!(err.to_string(), "not UTF-8 text");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // See: issue 13, finding 8 (a state file that is a symlink was followed).
    #[test]
    fn symlinks_are_refused_only_when_asked() {
        let dir = tempfile_dir("links");
        let target = dir.join("target");
        std::fs::write(&target, "x").unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(
            read_text(&link, 10, Symlinks::Follow).unwrap().as_deref(),
            Some("x")
        );
        let err = read_text(&link, 10, Symlinks::Refuse).unwrap_err();
        assert!(err.is_symlink(), "{err:?}");
        assert!(err.to_string().contains("symlink"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "bootstrap-cfg-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
