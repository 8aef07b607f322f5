//! The daemon's two parsers of untrusted text: the admin API's `/add`/`/rm` body and
//! the TOML config. Whatever the bytes, they return a value or an error, never panic;
//! an accepted admin body is internally consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(change) = lb_daemon::admin::parse_change(data) {
        assert!(change.addresses.is_empty() || change.addresses.len() == change.names.len());
        for name in &change.names {
            assert!(!name.as_str().is_empty() && name.as_str().len() <= 63);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = lb_daemon::config::Config::parse(text);
    }
});
