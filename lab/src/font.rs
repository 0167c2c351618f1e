//! The plot's font. plotters' `ab_glyph` backend is pure Rust but ships no font, and the
//! font-kit backend would need the fontconfig and freetype development packages, so the plot
//! registers a TrueType font found on the machine (Debian's `fonts-dejavu-core`).

use std::sync::OnceLock;

const CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();

/// Registers the first font found as plotters' "sans-serif" (once per process).
pub fn register() -> anyhow::Result<()> {
    REGISTERED
        .get_or_init(|| {
            let path = std::env::var("CONDUIT_LAB_FONT")
                .ok()
                .into_iter()
                .chain(CANDIDATES.iter().map(|s| s.to_string()))
                .find(|p| std::path::Path::new(p).exists())
                .ok_or_else(|| {
                    format!(
                        "no TrueType font for the plot (install fonts-dejavu-core, or set \
                         CONDUIT_LAB_FONT); tried {}",
                        CANDIDATES.join(", ")
                    )
                })?;
            let bytes = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
            // plotters keeps registered fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes)
                .map_err(|_| format!("{path}: not a usable TrueType font"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}
