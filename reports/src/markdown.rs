//! Markdown tables.

/// A GitHub-flavoured Markdown table: `header` names the columns; `right` says which columns are right-aligned
/// (numbers). Cells containing `|` are escaped. Every row must have one cell per column (a programming error
/// otherwise: this panics).
pub fn table(header: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    for r in rows {
        assert_eq!(r.len(), header.len(), "Markdown row {r:?} does not match the header {header:?}");
    }
    let esc = |s: &str| s.replace('|', "\\|");
    let mut out = format!("| {} |\n|", header.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" | "));
    for i in 0..header.len() {
        out.push_str(if right.get(i).copied().unwrap_or(false) { "---:|" } else { "---|" });
    }
    out.push('\n');
    for r in rows {
        out.push_str(&format!("| {} |\n", r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns_and_escapes() {
        let t = super::table(&["policy", "rate"], &[false, true], &[vec!["a|b".into(), "1.5".into()]]);
        assert_eq!(t, "| policy | rate |\n|---|---:|\n| a\\|b | 1.5 |\n");
    }
}
