//! PNG plots through gnuplot (Debian: apt-get install -y gnuplot-nox). The data and the
//! script are always written next to the PNG, so a box without gnuplot can plot them later.

use std::fs;
use std::path::Path;
use std::process::Command;

/// Write `<stem>.dat` and `<stem>.gp`, then run gnuplot to make `<stem>.png`.
/// Returns a note for the report when gnuplot is missing or fails.
pub fn gnuplot(stem: &Path, data: &str, script: &str) -> Result<(), String> {
    let dat = stem.with_extension("dat");
    let gp = stem.with_extension("gp");
    fs::write(&dat, data).map_err(|e| format!("{}: {e}", dat.display()))?;
    fs::write(&gp, script).map_err(|e| format!("{}: {e}", gp.display()))?;
    let out = Command::new("gnuplot")
        .arg(&gp)
        .current_dir(stem.parent().unwrap_or(Path::new(".")))
        .output()
        .map_err(|e| {
            format!(
                "gnuplot not run ({e}); install it (apt-get install -y gnuplot-nox) and run: gnuplot {}",
                gp.display()
            )
        })?;
    if !out.status.success() {
        return Err(format!(
            "gnuplot failed on {}: {}",
            gp.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}
