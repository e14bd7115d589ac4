//! One writer per data directory: an advisory lock on `DIR/writer.lock`,
//! taken before the database is opened and held by the event writer for as
//! long as it runs.
//!
//! Two servers on one `--data` would each keep their own copy of the
//! analysis phases and interleave their updates of the same aggregates, so
//! the second refuses to start instead. The lock is the operating system's
//! (`flock` on Unix, through `std::fs::File::try_lock`): it goes with the
//! process however the process ends, so a crash never leaves a stale lock
//! behind. The file holds the holder's pid, only to name it in the second
//! server's message. Readers (`flags results`, readouts) do not take it:
//! the database's WAL mode lets them read while the writer commits. Not
//! here: the database itself (`schema`).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Write as _};
use std::path::Path;

use super::schema::OpenError;

/// The lock file's name inside the data directory.
pub const FILE_NAME: &str = "writer.lock";

/// The held lock; released when dropped (or when the process exits).
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// Takes the lock of `dir` (creating the directory if needed), or says
    /// which process holds it. Never waits.
    pub fn acquire(dir: &Path) -> Result<Self, OpenError> {
        let directory = |source| OpenError::Directory {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(directory)?;
        // Not truncated on open: until the lock is ours, the pid in it is
        // the holder's.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(FILE_NAME))
            .map_err(directory)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let holder = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Err(OpenError::InUse {
                    path: dir.to_path_buf(),
                    holder,
                });
            }
            Err(TryLockError::Error(source)) => return Err(directory(source)),
        }
        file.set_len(0).map_err(directory)?;
        writeln!(file, "{}", std::process::id()).map_err(directory)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holders_pid_until_the_first_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let first = WriterLock::acquire(dir.path()).unwrap();
        let error = WriterLock::acquire(dir.path()).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, OpenError::InUse { holder: Some(pid), .. } if pid == std::process::id()),
            "{message}"
        );
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        drop(first);
        WriterLock::acquire(dir.path()).unwrap();
    }
}
