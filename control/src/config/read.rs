//! Reading the config file with bounds: a regular file only, of at most [`MAX_CONFIG_BYTES`].
//!
//! A named pipe at the config path would block the reader (the reload thread) until a writer
//! comes, and `/dev/urandom` never ends; both are refused before anything is read. The file is
//! opened non-blocking, so a pipe swapped in after the type check is not waited on either, and
//! its type is checked again on the open handle.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest config file read: far above any real one (thousands of tunnels take a few MiB),
/// small enough that a wrong path costs little memory.
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024 * 1024;

/// The file's text, or why it cannot be the config.
pub(super) fn read_bounded(path: &Path) -> io::Result<String> {
    check_type(&std::fs::metadata(path)?)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    check_type(&meta)?;
    check_size(meta.len())?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow after the size check: read one byte past the cap to notice.
    (&file as &File)
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)?;
    check_size(bytes.len() as u64)?;
    String::from_utf8(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

fn check_type(meta: &std::fs::Metadata) -> io::Result<()> {
    let t = meta.file_type();
    if t.is_file() {
        return Ok(());
    }
    if t.is_dir() {
        // The wording of the OS error for reading a directory, which callers already expect.
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "Is a directory",
        ));
    }
    let what = if t.is_fifo() {
        "a named pipe"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what}, not a regular file"),
    ))
}

fn check_size(len: u64) -> io::Result<()> {
    if len > MAX_CONFIG_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!(
                "larger than the {} MiB limit for a config file",
                MAX_CONFIG_BYTES >> 20
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::config::Config;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("conduit-read-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `Config::load(path)`'s message, failing the test if it takes more than 2 s.
    fn load_error(path: &Path) -> String {
        let (tx, rx) = mpsc::channel();
        let p = path.to_path_buf();
        std::thread::spawn(move || {
            let _ = tx.send(Config::load(&p).map(|_| ()).map_err(|e| e.to_string()));
        });
        match rx.recv_timeout(Duration::from_secs(2)) {
            Ok(Err(e)) => e,
            Ok(Ok(())) => panic!("{} accepted", path.display()),
            Err(_) => panic!("reading {} blocked", path.display()),
        }
    }

    #[test]
    fn a_named_pipe_is_refused_without_blocking() {
        let dir = scratch("fifo");
        let fifo = dir.join("conduit.yaml");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo failed");
        let e = load_error(&fifo);
        assert_eq!(
            e,
            format!(
                "{}: cannot read config: a named pipe, not a regular file",
                fifo.display()
            )
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_device_is_refused_without_reading_it() {
        let e = load_error(Path::new("/dev/urandom"));
        assert_eq!(
            e,
            "/dev/urandom: cannot read config: a character device, not a regular file"
        );
    }

    #[test]
    fn a_directory_is_refused_in_the_os_words() {
        let dir = scratch("dir");
        assert_eq!(
            load_error(&dir),
            format!("{}: cannot read config: Is a directory", dir.display())
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_above_the_cap_is_refused_before_it_is_read() {
        let dir = scratch("big");
        let path = dir.join("conduit.yaml");
        // Sparse: takes no disk, and reading it would take 64 MiB of memory.
        let f = File::create(&path).unwrap();
        f.set_len(MAX_CONFIG_BYTES + 1).unwrap();
        assert_eq!(
            load_error(&path),
            format!(
                "{}: cannot read config: larger than the 64 MiB limit for a config file",
                path.display()
            )
        );
        f.set_len(MAX_CONFIG_BYTES).unwrap();
        assert_eq!(read_bounded(&path).unwrap().len() as u64, MAX_CONFIG_BYTES);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn binary_garbage_is_refused_as_not_text() {
        let dir = scratch("binary");
        let path = dir.join("conduit.yaml");
        std::fs::write(&path, b"dataplane:\n  ports: \xff\xfe\n").unwrap();
        assert_eq!(
            load_error(&path),
            format!(
                "{}: cannot read config: not UTF-8 text (invalid byte at offset 20)",
                path.display()
            )
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_symlink_to_a_regular_file_is_read() {
        let dir = scratch("link");
        let target = dir.join("real.yaml");
        std::fs::write(
            &target,
            "dataplane: {ports: [{device: net_ring0}], workers: [1]}\n",
        )
        .unwrap();
        let link = dir.join("conduit.yaml");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        Config::load(&link).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
