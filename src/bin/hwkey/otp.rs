//! `hwkey otp`: print TOTP/HOTP codes and enroll new secrets.

use clap::Subcommand;
use hwkey::otp::qr::Qr;
use hwkey::otp::uri::{KeyUri, OtpKind};
use hwkey::otp::{Algorithm, Digits, Hotp, OtpSecret, Totp};

/// The `otp` command group.
#[derive(Debug, Subcommand)]
pub enum OtpCommand {
    /// Print the TOTP code (HOTP with --counter or an otpauth://hotp URI).
    Code {
        /// An otpauth:// URI holding secret and parameters.
        #[arg(long, conflicts_with_all = ["secret", "algorithm", "digits", "period"], required_unless_present = "secret")]
        uri: Option<String>,
        /// The base32 secret (case-insensitive; spaces and '=' allowed).
        #[arg(long)]
        secret: Option<String>,
        /// sha1, sha256 or sha512.
        #[arg(long)]
        algorithm: Option<String>,
        /// Number of digits, 6 to 8.
        #[arg(long, allow_negative_numbers = true)]
        digits: Option<i64>,
        /// TOTP period in seconds (at least 1).
        #[arg(long, allow_negative_numbers = true)]
        period: Option<i64>,
        /// HOTP counter: print the HOTP code for it.
        #[arg(long)]
        counter: Option<u64>,
        /// Unix time to compute the TOTP code for (default: now).
        #[arg(long, allow_negative_numbers = true)]
        time: Option<i64>,
    },
    /// Make a new TOTP secret; print its otpauth URI and QR code.
    New {
        /// The issuer (service name).
        #[arg(long)]
        issuer: String,
        /// The account name.
        #[arg(long)]
        account: String,
        /// sha1 (default), sha256 or sha512.
        #[arg(long)]
        algorithm: Option<String>,
        /// Number of digits, 6 (default) to 8.
        #[arg(long, allow_negative_numbers = true)]
        digits: Option<i64>,
        /// Period in seconds (default 30).
        #[arg(long, allow_negative_numbers = true)]
        period: Option<i64>,
        /// Also write the QR code as an SVG file.
        #[arg(long, value_name = "FILE")]
        svg: Option<std::path::PathBuf>,
        /// Also write the QR code as a PNG file.
        #[arg(long, value_name = "FILE")]
        png: Option<std::path::PathBuf>,
    },
}

fn warn_secret(secret: &OtpSecret) {
    if let Some(w) = secret.warning() {
        eprintln!("warning: {w}");
    }
}

/// Run an `otp` command. Codes and URIs go to stdout, warnings to stderr.
pub fn run(cmd: OtpCommand) -> Result<(), String> {
    match cmd {
        OtpCommand::Code { uri, secret, algorithm, digits, period, counter, time } => {
            let code = code(uri, secret, algorithm, digits, period, counter, time).map_err(|e| e.to_string())?;
            println!("{code}");
            Ok(())
        }
        OtpCommand::New { issuer, account, algorithm, digits, period, svg, png } => {
            let mut key = KeyUri::new_totp(Some(&issuer), &account, OtpSecret::generate().map_err(|e| e.to_string())?);
            if let Some(a) = algorithm {
                key.algorithm = a.parse().map_err(|e: hwkey::otp::OtpError| e.to_string())?;
            }
            if let Some(d) = digits {
                key.digits = Digits::new(d).map_err(|e| e.to_string())?;
            }
            if let Some(p) = period {
                if p < 1 {
                    return Err(hwkey::otp::OtpError::InvalidPeriod(p).to_string());
                }
                key.kind = OtpKind::Totp { period: p as u64 };
            }
            let text = key.to_uri().map_err(|e| e.to_string())?;
            let qr = Qr::new(&text).map_err(|e| e.to_string())?;
            if let Some(path) = svg {
                std::fs::write(&path, qr.to_svg(8)).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            if let Some(path) = png {
                let bytes = qr.to_png(8).map_err(|e| e.to_string())?;
                std::fs::write(&path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            println!("{text}");
            print!("{}", qr.to_terminal(false));
            Ok(())
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn code(
    uri: Option<String>,
    secret: Option<String>,
    algorithm: Option<String>,
    digits: Option<i64>,
    period: Option<i64>,
    counter: Option<u64>,
    time: Option<i64>,
) -> Result<String, hwkey::otp::OtpError> {
    let key = match (uri, secret) {
        (Some(u), _) => KeyUri::parse(&u)?,
        (None, Some(s)) => {
            let mut key = KeyUri::new_totp(None, "-", OtpSecret::from_base32(&s)?);
            if let Some(a) = algorithm {
                key.algorithm = a.parse::<Algorithm>()?;
            }
            if let Some(d) = digits {
                key.digits = Digits::new(d)?;
            }
            if let Some(p) = period {
                if p < 1 {
                    return Err(hwkey::otp::OtpError::InvalidPeriod(p));
                }
                key.kind = OtpKind::Totp { period: p as u64 };
            }
            key
        }
        (None, None) => return Err(hwkey::otp::OtpError::MalformedUri("give --uri or --secret".into())),
    };
    warn_secret(&key.secret);
    let period = match (counter, key.kind) {
        (Some(c), _) | (None, OtpKind::Hotp { counter: c }) => {
            return Ok(Hotp::new(key.secret.clone(), key.algorithm, key.digits).code(c));
        }
        (None, OtpKind::Totp { period }) => period,
    };
    let totp = Totp::new(key.secret.clone(), key.algorithm, key.digits, i64::try_from(period).unwrap_or(i64::MAX))?;
    totp.code_at(time.unwrap_or_else(hwkey::otp::totp::now))
}
