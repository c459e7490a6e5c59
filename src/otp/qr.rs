//! QR codes for enrollment: terminal text, SVG and PNG.
//!
//! Terminal rendering packs two module rows into one line with the Unicode
//! half blocks `▀`, `▄` and `█`, so the code stays square in a terminal.
//! Every rendering has the 4-module quiet zone scanners need.

use super::OtpError;
use qrcode::{Color, EcLevel, QrCode};

/// Quiet zone width in modules.
const QUIET: usize = 4;

/// A QR code of some text (an otpauth URI), ready to render.
#[derive(Debug, Clone)]
pub struct Qr {
    width: usize,
    dark: Vec<bool>,
}

impl Qr {
    /// Encode `text` (error correction level M).
    pub fn new(text: &str) -> Result<Qr, OtpError> {
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
            .map_err(|e| OtpError::Qr(e.to_string()))?;
        let width = code.width();
        let dark = code.to_colors().into_iter().map(|c| c == Color::Dark).collect();
        Ok(Qr { width, dark })
    }

    /// Width in modules, without the quiet zone.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Whether the module at (x, y), quiet zone included, is dark.
    fn is_dark(&self, x: usize, y: usize) -> bool {
        let (Some(x), Some(y)) = (x.checked_sub(QUIET), y.checked_sub(QUIET)) else { return false };
        x < self.width && y < self.width && self.dark.get(y * self.width + x).copied().unwrap_or(false)
    }

    /// Text for a terminal, two module rows per line. With `dark_on_light`
    /// false (the right choice for light text on a dark terminal background)
    /// light modules are drawn as blocks; with true, dark modules are.
    pub fn to_terminal(&self, dark_on_light: bool) -> String {
        let full = self.width + 2 * QUIET;
        let mut out = String::new();
        let mut y = 0;
        while y < full {
            for x in 0..full {
                let ink = |yy: usize| yy < full && (self.is_dark(x, yy) == dark_on_light);
                out.push(match (ink(y), ink(y + 1)) {
                    (true, true) => '█',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (false, false) => ' ',
                });
            }
            out.push('\n');
            y += 2;
        }
        out
    }

    /// An SVG document, `module_px` pixels per module.
    pub fn to_svg(&self, module_px: usize) -> String {
        let m = module_px.max(1);
        let full = (self.width + 2 * QUIET) * m;
        let mut path = String::new();
        for y in 0..self.width {
            for x in 0..self.width {
                if self.is_dark(x + QUIET, y + QUIET) {
                    path.push_str(&format!("M{},{}h{m}v{m}h-{m}z", (x + QUIET) * m, (y + QUIET) * m));
                }
            }
        }
        format!(
            "<?xml version=\"1.0\" standalone=\"yes\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{full}\" height=\"{full}\" viewBox=\"0 0 {full} {full}\" shape-rendering=\"crispEdges\"><rect width=\"{full}\" height=\"{full}\" fill=\"#fff\"/><path fill=\"#000\" d=\"{path}\"/></svg>\n"
        )
    }

    /// A grayscale PNG image, `module_px` pixels per module (clamped to 1..=32).
    pub fn to_png(&self, module_px: usize) -> Result<Vec<u8>, OtpError> {
        let m = module_px.clamp(1, 32);
        let full = (self.width + 2 * QUIET) * m;
        let side = u32::try_from(full).map_err(|_| OtpError::Qr("image too large".into()))?;
        let mut pixels = vec![0xffu8; full * full];
        for (py, row) in pixels.chunks_mut(full).enumerate() {
            for (px, p) in row.iter_mut().enumerate() {
                if self.is_dark(px / m, py / m) {
                    *p = 0;
                }
            }
        }
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, side, side);
            enc.set_color(png::ColorType::Grayscale);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().map_err(|e| OtpError::Qr(e.to_string()))?;
            w.write_image_data(&pixels).map_err(|e| OtpError::Qr(e.to_string()))?;
            w.finish().map_err(|e| OtpError::Qr(e.to_string()))?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders() {
        let q = Qr::new("otpauth://totp/A:b?secret=JBSWY3DPEHPK3PXP&issuer=A").unwrap();
        let t = q.to_terminal(false);
        assert_eq!(t.lines().count(), (q.width() + 8).div_ceil(2));
        assert!(t.contains('▀') || t.contains('▄'));
        let svg = q.to_svg(4);
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"));
        let png = q.to_png(4).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let dec = png::Decoder::new(&png[..]);
        let r = dec.read_info().unwrap();
        assert_eq!(r.info().width as usize, (q.width() + 8) * 4);
    }

    #[test]
    fn too_long() {
        assert!(Qr::new(&"x".repeat(5000)).is_err());
    }
}
