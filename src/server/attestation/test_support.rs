//! Fixtures for the attestation format unit tests.
