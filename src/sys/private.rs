//! Files only the proxy's user may read (the CA's key): made so from the
//! start natively (mode 0600, never a moment readable by others); on the
//! wasm builds WASI has no modes, so the launchers start the runtime under
//! `umask 077` (scripts/run, the Feature, the image).

use std::io::{self, Write};

/// Write `bytes` to a new file at `path` that only its owner can read; an
/// existing file is an error (a key is never written over).
pub fn write_private(path: &str, bytes: &[u8]) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
