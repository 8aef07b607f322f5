//! The daemon's two parsers of untrusted text: the admin API's `/add`/`/rm` body and
//! the TOML config. Whatever the bytes, they return a value or an error, never panic;
//! an accepted admin body is internally consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(change) = lb_api::ChangeRequest::from_json(data) {
        assert!(change.addresses.is_empty() || change.addresses.len() == change.hostnames.len());
        for name in &change.hostnames {
            assert!(!name.as_str().is_empty() && name.as_str().len() <= 63);
        }
        // What lbctl would send for it reads back as the same request.
        assert_eq!(
            lb_api::ChangeRequest::from_json(change.to_json().as_bytes()).as_ref(),
            Ok(&change)
        );
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = lb_daemon::config::Config::parse(text);
    }
});
