//! The MDS3 BLOB payload (FIDO MDS3 §3.1.6) and the parts of a metadata
//! statement (FIDO Metadata Statement 3.0 §4) the relying party uses. Unknown
//! fields are ignored; an entry that does not parse is skipped and counted,
//! so that one vendor's typo does not take every other authenticator's
//! metadata away.

use super::status::AuthenticatorStatus;
use serde::Deserialize;

/// The BLOB payload.
#[derive(Debug, Clone, Deserialize)]
pub struct BlobPayload {
    /// The legal header, as published.
    #[serde(rename = "legalHeader", default)]
    pub legal_header: Option<String>,
    /// The serial number of this BLOB: strictly increasing.
    pub no: u64,
    /// When the next BLOB is due, ISO 8601 date (`YYYY-MM-DD`).
    #[serde(rename = "nextUpdate")]
    pub next_update: String,
    /// The entries, kept as JSON until each is parsed on its own.
    pub entries: Vec<serde_json::Value>,
}

/// One entry of the BLOB: an authenticator model.
#[derive(Debug, Clone, Deserialize)]
pub struct MetadataEntry {
    /// UAF authenticators: the AAID.
    #[serde(default)]
    pub aaid: Option<String>,
    /// FIDO2 authenticators: the AAGUID (UUID string).
    #[serde(default)]
    pub aaguid: Option<String>,
    /// U2F authenticators: hex SHA-1 of the attestation certificates' public keys.
    #[serde(rename = "attestationCertificateKeyIdentifiers", default)]
    pub attestation_certificate_key_identifiers: Vec<String>,
    /// The statement itself.
    #[serde(rename = "metadataStatement", default)]
    pub metadata_statement: Option<MetadataStatement>,
    /// Status reports, in the order the BLOB lists them.
    #[serde(rename = "statusReports", default)]
    pub status_reports: Vec<StatusReport>,
    /// ISO 8601 date of the last status change.
    #[serde(rename = "timeOfLastStatusChange", default)]
    pub time_of_last_status_change: Option<String>,
}

/// The metadata statement fields hwkey uses.
#[derive(Debug, Clone, Deserialize)]
pub struct MetadataStatement {
    /// Human-readable name of the model ("YubiKey 5 Series").
    #[serde(default)]
    pub description: String,
    /// The model's icon, a `data:` URL.
    #[serde(default)]
    pub icon: Option<String>,
    /// `fido2`, `u2f` or `uaf`.
    #[serde(rename = "protocolFamily", default)]
    pub protocol_family: Option<String>,
    /// Firmware/model version.
    #[serde(rename = "authenticatorVersion", default)]
    pub authenticator_version: Option<u64>,
    /// Base64 DER certificates that attestation chains of *this* model must
    /// end in: trust anchors scoped to this entry.
    #[serde(rename = "attestationRootCertificates", default)]
    pub attestation_root_certificates: Vec<String>,
    /// Attestation types the model uses (`basic_full`, `attca`, ...; the
    /// numeric codes of metadata statements before MDS3 are kept as they are).
    #[serde(rename = "attestationTypes", default)]
    pub attestation_types: Vec<serde_json::Value>,
}

/// A status report (MDS3 §3.1.3).
#[derive(Debug, Clone, Deserialize)]
pub struct StatusReport {
    /// The status.
    pub status: AuthenticatorStatus,
    /// ISO 8601 date from which the status applies.
    #[serde(rename = "effectiveDate", default)]
    pub effective_date: Option<String>,
    /// For a compromise: the affected attestation certificate (base64 DER),
    /// when only that one is affected.
    #[serde(default)]
    pub certificate: Option<String>,
    /// Certification descriptor, e.g. "YubiKey 5 Series".
    #[serde(rename = "certificationDescriptor", default)]
    pub certification_descriptor: Option<String>,
    /// Certificate number.
    #[serde(rename = "certificateNumber", default)]
    pub certificate_number: Option<String>,
}

/// Days since 1970-01-01 of an ISO 8601 date `YYYY-MM-DD` (a longer
/// date-time is cut to its date).
pub fn parse_date_days(s: &str) -> Option<i64> {
    let d = s.get(..10)?;
    let b = d.as_bytes();
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let y: i64 = d.get(0..4)?.parse().ok()?;
    let m: i64 = d.get(5..7)?.parse().ok()?;
    let day: i64 = d.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (proleptic Gregorian), H. Hinnant's algorithm.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date_days("1970-01-01"), Some(0));
        assert_eq!(parse_date_days("2000-03-01"), Some(11_017));
        assert_eq!(parse_date_days("2024-02-29T10:00:00Z"), Some(19_782));
        assert_eq!(parse_date_days("2024-13-01"), None);
        assert_eq!(parse_date_days("2024/01/01"), None);
        assert_eq!(parse_date_days("20"), None);
        assert_eq!(parse_date_days("é024-01-01"), None);
    }
}
