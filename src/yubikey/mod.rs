//! The YubiKey OTP HID interface (feature `yubikey`).
