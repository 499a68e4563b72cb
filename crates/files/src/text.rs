//! Reading text files: UTF-8, with or without the byte-order mark that Excel and Windows tools
//! put in front. Every reader of text (data sets, importers, experiment files, checkpoint
//! configs and vocabularies) goes through here, so a BOM never becomes part of a header, a
//! first cell or a first key.

use std::path::Path;

/// `text` without a leading UTF-8 byte-order mark.
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// The whole file as UTF-8 text, without a leading byte-order mark.
pub fn read_to_string(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bom_is_dropped_once_and_only_at_the_start() {
        assert_eq!(strip_bom("\u{feff}a\tb"), "a\tb");
        assert_eq!(strip_bom("a\u{feff}"), "a\u{feff}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tsv");
        std::fs::write(&path, "\u{feff}0.1\t0.9\n").unwrap();
        assert_eq!(read_to_string(&path).unwrap(), "0.1\t0.9\n");
    }
}
