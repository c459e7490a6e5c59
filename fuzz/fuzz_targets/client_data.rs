//! clientDataJSON (src/proto/webauthn.rs `CollectedClientData`,
//! src/server/client_data.rs, src/server/origin.rs). Input: the JSON bytes.
//! Checked: parse -> serialize -> parse is stable; the client-data checks
//! (type, challenge, origin, cross-origin) never panic under several
//! configurations (exact origins, subdomains allowed, related origins, cross
//! origin allowed); an accepted origin is always the RP ID or a subdomain of it.
#![no_main]
use hwkey::proto::webauthn::CollectedClientData;
use hwkey::server::RpConfig;
use hwkey::server::client_data::check_client_data;
use hwkey::server::origin::{self, Origin};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn configs() -> &'static [RpConfig] {
    static C: OnceLock<Vec<RpConfig>> = OnceLock::new();
    C.get_or_init(|| {
        let exact = RpConfig::new(hwkey_fuzz::RP_ID, "fuzz", hwkey_fuzz::ORIGIN);
        let subdomains = hwkey_fuzz::config();
        let mut related = RpConfig::new(hwkey_fuzz::RP_ID, "fuzz", hwkey_fuzz::ORIGIN);
        related.related_origins = vec!["https://example.org".into(), "android:apk-key-hash:abc".into()];
        let mut cross = hwkey_fuzz::config();
        cross.allow_cross_origin = true;
        cross.allowed_top_origins = vec!["https://top.example".into()];
        let mut idn = RpConfig::new("bücher.example", "fuzz", "https://bücher.example");
        idn.allow_subdomains = true;
        vec![exact, subdomains, related, cross, idn]
    })
}

fuzz_target!(|data: &[u8]| {
    let configs = configs();
    hwkey_fuzz::timed(|| {
        if let Ok(c) = CollectedClientData::parse(data) {
            let j = c.to_json_bytes();
            let c2 = CollectedClientData::parse(&j).expect("serialized client data parses");
            assert_eq!(c2.to_json_bytes(), j, "client data re-serialization is not stable");
            for cfg in configs {
                if origin::origin_allowed(&c.origin, cfg) {
                    // The one trailing slash of a URL-shaped origin is dropped.
                    let bare = c.origin.strip_suffix('/').filter(|o| Origin::parse(o).is_some()).unwrap_or(&c.origin);
                    let listed = cfg.origins.iter().chain(&cfg.related_origins).any(|o| o == bare);
                    if !listed {
                        let o = Origin::parse(bare).expect("an allowed unlisted origin parses");
                        assert_eq!(o.scheme, "https", "non-https origin {:?} allowed", c.origin);
                        assert!(
                            origin::host_within_rp_id(o.host, &cfg.rp_id),
                            "origin {:?} allowed outside RP ID {:?}",
                            c.origin,
                            cfg.rp_id
                        );
                    }
                }
            }
        }
        for cfg in configs {
            for ty in ["webauthn.create", "webauthn.get"] {
                let _ = check_client_data(data, ty, &hwkey_fuzz::CHALLENGE, cfg);
            }
        }
    });
});
