//! One self-contained HTML page: the report's Markdown (tables, notes) rendered
//! as HTML, and the plots inlined as SVG, so one file shows a whole experiment.

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `**bold**` and `` `code` `` inside escaped text.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let mut bold = false;
    let mut code = false;
    let e = escape(s);
    let mut rest = e.as_str();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("**") {
            out.push_str(if bold { "</strong>" } else { "<strong>" });
            bold = !bold;
            rest = r;
        } else if let Some(r) = rest.strip_prefix('`') {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
            rest = r;
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if bold {
        out.push_str("</strong>");
    }
    if code {
        out.push_str("</code>");
    }
    out
}

fn cells(line: &str) -> Vec<String> {
    let t = line.trim().trim_start_matches('|').trim_end_matches('|');
    t.split(" | ").map(|c| c.trim().to_string()).collect()
}

/// The subset of Markdown the report writes: headings, tables, bullet lists, paragraphs, images (skipped: plots are inlined).
pub fn markdown_to_html(md: &str) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = md.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim_start().starts_with('|') {
            let mut block = Vec::new();
            while i < lines.len() && lines[i].trim_start().starts_with('|') {
                block.push(lines[i]);
                i += 1;
            }
            out.push_str("<div class=\"table\"><table>\n");
            for (k, row) in block.iter().enumerate() {
                if k == 1 && row.chars().all(|c| matches!(c, '|' | '-' | ' ' | ':')) {
                    continue;
                }
                let tag = if k == 0 { "th" } else { "td" };
                out.push_str("<tr>");
                for c in cells(row) {
                    out.push_str(&format!("<{tag}>{}</{tag}>", inline(&c)));
                }
                out.push_str("</tr>\n");
            }
            out.push_str("</table></div>\n");
            continue;
        }
        if let Some(h) = line.strip_prefix("## ") {
            out.push_str(&format!("<h2>{}</h2>\n", inline(h)));
        } else if let Some(h) = line.strip_prefix("# ") {
            out.push_str(&format!("<h1>{}</h1>\n", inline(h)));
        } else if let Some(item) = line.strip_prefix("- ") {
            out.push_str(&format!("<li>{}</li>\n", inline(item)));
        } else if line.starts_with("![") || line.trim().is_empty() {
            // Images are inlined by the page itself; blank lines separate blocks.
        } else {
            out.push_str(&format!("<p>{}</p>\n", inline(line)));
        }
        i += 1;
    }
    out
}

/// The page: `markdown` rendered, then each plot's SVG under its title.
pub fn page(title: &str, markdown: &str, plots: &[(String, String)]) -> String {
    let mut figures = String::new();
    for (name, svg) in plots {
        let svg = match svg.find("<svg") {
            Some(at) => &svg[at..],
            None => svg.as_str(),
        };
        figures.push_str(&format!("<figure><figcaption>{}</figcaption>\n{svg}\n</figure>\n", escape(name)));
    }
    // The figures go under the Markdown's own "Plots" heading (which lists the PNG files), else at the end.
    let heading = "<h2>Plots</h2>\n";
    let mut body = markdown_to_html(markdown);
    match body.find(heading) {
        Some(at) => body.insert_str(at + heading.len(), &figures),
        None if !plots.is_empty() => body.push_str(&format!("{heading}{figures}")),
        None => {}
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n\
         body {{ font-family: 'DejaVu Sans', system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }}\n\
         table {{ border-collapse: collapse; font-size: 13px; margin: 1em 0; }}\n\
         th, td {{ border: 1px solid #ccc; padding: 3px 7px; text-align: left; white-space: nowrap; }}\n\
         th {{ background: #f2f2f2; }}\n\
         tr:nth-child(even) td {{ background: #fafafa; }}\n\
         .table {{ overflow-x: auto; }}\n\
         p {{ max-width: 1100px; line-height: 1.45; font-size: 14px; }}\n\
         figure {{ margin: 2em 0; }}\n\
         figcaption {{ font-weight: bold; margin-bottom: .5em; }}\n\
         svg {{ max-width: 100%; height: auto; border: 1px solid #eee; }}\n\
         </style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_bold_and_escaping() {
        let html = markdown_to_html("# R & D\n\n| a | b |\n| - | - |\n| **1.0** [0–2] | <x> |\n\nNote `k`.\n");
        assert!(html.contains("<h1>R &amp; D</h1>"));
        assert!(html.contains("<th>a</th><th>b</th>"));
        assert!(html.contains("<td><strong>1.0</strong> [0–2]</td><td>&lt;x&gt;</td>"));
        assert!(html.contains("<p>Note <code>k</code>.</p>"));
        assert!(!html.contains("<td>-</td>"));
    }
}
