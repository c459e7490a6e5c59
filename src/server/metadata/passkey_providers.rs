//! A bundled list of passkey providers' AAGUIDs and names, in the format of
//! the community list of passkey-authenticator AAGUIDs (`{"<aaguid>":
//! {"name", "icon_dark"?, "icon_light"?}}`), so that a credential from
//! "iCloud Keychain" or "Google Password Manager" is named even without
//! attestation or metadata. Such a name is what the authenticator claims
//! (its AAGUID is not attested): it is for display, never for policy.

use serde::Deserialize;
use std::collections::HashMap;
use std::sync::OnceLock;

const LIST: &str = include_str!("passkey_providers.json");

/// One provider of the list.
#[derive(Debug, Clone, Deserialize)]
pub struct PasskeyProvider {
    /// Display name.
    pub name: String,
    /// Icon for dark backgrounds (`data:` URL), when the list has one.
    #[serde(default)]
    pub icon_dark: Option<String>,
    /// Icon for light backgrounds (`data:` URL), when the list has one.
    #[serde(default)]
    pub icon_light: Option<String>,
}

fn list() -> &'static HashMap<String, PasskeyProvider> {
    static L: OnceLock<HashMap<String, PasskeyProvider>> = OnceLock::new();
    L.get_or_init(|| serde_json::from_str(LIST).unwrap_or_default())
}

/// The provider of an AAGUID (UUID string, any case), if the list has it.
pub fn lookup(aaguid: &str) -> Option<&'static PasskeyProvider> {
    list().get(&aaguid.to_ascii_lowercase())
}

/// How many providers the bundled list holds.
pub fn count() -> usize {
    list().len()
}

#[cfg(test)]
mod tests {
    #[test]
    fn bundled_list_parses_and_names_known_providers() {
        assert!(super::count() >= 10);
        assert_eq!(super::lookup("FBFC3007-154E-4ECC-8C0B-6E020557D7BD").unwrap().name, "iCloud Keychain");
        assert_eq!(super::lookup("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4").unwrap().name, "Google Password Manager");
        assert!(super::lookup("00000000-0000-0000-0000-000000000000").is_none());
    }
}
