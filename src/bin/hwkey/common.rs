//! What the FIDO command groups share: `--device`, opening a key, the
//! touch spinner on stderr, PIN entry without echo, error formatting.

use hwkey::client::discovery::{self, DeviceSpec};
use hwkey::client::webauthn::UserInteraction;
use hwkey::client::{ClientError, Device, Op, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use zeroize::Zeroizing;

/// `--device` for commands that talk to an authenticator.
#[derive(Debug, Clone, clap::Args)]
pub struct DeviceArg {
    /// The authenticator: hid:PATH or udp:HOST:PORT (default: the connected key).
    #[arg(long, value_name = "SPEC")]
    pub device: Option<String>,
}

/// `--pin` (or `HWKEY_PIN`) for commands that may need the PIN.
#[derive(Debug, Clone, clap::Args)]
pub struct PinArg {
    /// The PIN (else HWKEY_PIN, else asked on the terminal).
    #[arg(long, env = "HWKEY_PIN", hide_env_values = true)]
    pub pin: Option<String>,
}

/// Turn a client error into the one-line message the user sees.
pub fn message(e: ClientError) -> String {
    match e {
        ClientError::PinRequired => "this security key needs its PIN: pass --pin or set HWKEY_PIN".into(),
        e => e.to_string(),
    }
}

static CANCEL: OnceLock<hwkey::client::CancelToken> = OnceLock::new();

/// The process-wide cancel handle: Ctrl-C cancels the running operation (the
/// key gets a CTAPHID CANCEL and stops waiting for a touch); if the tool is
/// still running two seconds later (blocked on a prompt), it exits.
pub fn install_ctrl_c() {
    let token = CANCEL.get_or_init(hwkey::client::CancelToken::new).clone();
    let _ = std::thread::Builder::new().name("ctrl-c".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        if rt.block_on(tokio::signal::ctrl_c()).is_ok() {
            token.cancel();
            std::thread::sleep(Duration::from_secs(2));
            eprintln!("error: cancelled");
            std::process::exit(130);
        }
    });
}

/// A spinner on stderr while the key waits for a touch.
#[derive(Clone)]
pub struct Touch {
    bar: ProgressBar,
    shown: Arc<AtomicBool>,
}

impl Touch {
    /// A hidden spinner; it appears at the first "waiting for touch".
    pub fn new() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        Touch { bar, shown: Arc::new(AtomicBool::new(false)) }
    }

    fn on(&self, p: Progress) {
        if p == Progress::WaitingForTouch && !self.shown.swap(true, Ordering::SeqCst) {
            if std::io::stderr().is_terminal() {
                self.bar.set_message("Touch your security key…");
                self.bar.enable_steady_tick(Duration::from_millis(100));
            } else {
                eprintln!("Touch your security key...");
            }
        }
    }

    /// An operation that reports to this spinner.
    pub fn op(&self, timeout: Duration) -> Op {
        let me = self.clone();
        let cancel = CANCEL.get_or_init(hwkey::client::CancelToken::new).clone();
        Op::timeout(timeout).with_cancel(cancel).on_progress(move |p| me.on(p))
    }

    /// Clear the spinner.
    pub fn done(&self) {
        self.shown.store(false, Ordering::SeqCst);
        self.bar.finish_and_clear();
    }
}

impl Drop for Touch {
    fn drop(&mut self) {
        if Arc::strong_count(&self.shown) == 1 {
            self.bar.finish_and_clear();
        }
    }
}

/// Open the device named by `--device`, or the connected one.
pub fn open(arg: &DeviceArg, touch: &Touch) -> Result<Device, String> {
    let spec = arg.device.as_deref().map(str::parse::<DeviceSpec>).transpose().map_err(message)?;
    let op = touch.op(Duration::from_secs(30));
    let r = discovery::open(spec.as_ref(), &op);
    touch.done();
    match r {
        Err(ClientError::NoDevice) => Err("no FIDO security key found (plug one in, or use --device)".into()),
        r => r.map_err(message),
    }
}

/// Read a secret from the terminal without echo (the prompt goes to the terminal, never stdout).
pub fn read_secret(prompt: &str) -> Option<Zeroizing<String>> {
    rpassword::prompt_password(prompt).ok().map(Zeroizing::new).filter(|p| !p.is_empty())
}

/// PIN entry for ceremonies: `--pin`/`HWKEY_PIN` once, else the terminal.
pub struct CliPin {
    fixed: Mutex<Option<Zeroizing<String>>>,
    interactive: bool,
    touch: Touch,
}

impl CliPin {
    /// From `--pin`.
    pub fn new(arg: &PinArg, touch: &Touch) -> Self {
        CliPin {
            // Prompts go to stderr: without a terminal there, nobody can answer.
            interactive: arg.pin.is_none() && std::io::stderr().is_terminal(),
            fixed: Mutex::new(arg.pin.clone().map(Zeroizing::new)),
            touch: touch.clone(),
        }
    }
}

impl UserInteraction for CliPin {
    fn request_pin(&self, retries: Option<u64>) -> Option<Zeroizing<String>> {
        if let Some(p) = self.fixed.lock().ok()?.take() {
            return Some(p);
        }
        if !self.interactive {
            return None;
        }
        self.touch.done();
        let prompt = match retries {
            Some(n) => format!("Wrong PIN ({n} attempts left). PIN: "),
            None => "PIN of your security key: ".to_owned(),
        };
        read_secret(&prompt)
    }
}
