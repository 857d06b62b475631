//! Natively: is a file private to the proxy's user (`--secrets`)? Its mode
//! gives nothing to group or others, and its owner is the effective uid.
#![allow(unsafe_code)]

use std::os::unix::fs::MetadataExt;

/// `Ok` when only the proxy's user can read `path`; else one line saying
/// what is wrong (the mode, or both uids) and what to do.
pub fn check_private(path: &str) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{path}: cannot read it ({})", super::describe(&e)))?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        let how = if mode & 0o044 != 0 { "readable by others" } else { "open to others" };
        return Err(format!("{path} is {how} (mode {mode:04o}): chmod 600 {path}, so that only the proxy's user reads it"));
    }
    // SAFETY: geteuid takes nothing and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!("{path} is owned by uid {}, not by the proxy's user (uid {me}): chown it to the proxy's user", meta.uid()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_file_others_can_read_or_another_user_owns_is_refused() {
        let path = std::env::temp_dir().join(format!("wasiter-private-{}", std::process::id()));
        std::fs::write(&path, "x").unwrap();
        let name = path.display().to_string();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = check_private(&name).unwrap_err();
        assert_eq!(e, format!("{name} is readable by others (mode 0644): chmod 600 {name}, so that only the proxy's user reads it"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o620)).unwrap();
        assert!(check_private(&name).unwrap_err().contains("is open to others (mode 0620)"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(check_private(&name), Ok(()));
        // Another owner: only root can give the file away to show it.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
            let e = check_private(&name).unwrap_err();
            assert!(e.contains("is owned by uid 4242, not by the proxy's user (uid 0)"), "{e}");
        }
        assert!(check_private("/nonexistent/secrets").unwrap_err().starts_with("/nonexistent/secrets: cannot read it"));
        let _ = std::fs::remove_file(&path);
    }
}
