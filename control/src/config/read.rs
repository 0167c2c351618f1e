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
