//! Fuzzes the SQL splitter a restore loads dumps through: any bytes, fed
//! whole or in two chunks split at a fuzzer-chosen point, never panic, and
//! both feeds give the same pieces (or the same error).

#![no_main]

use circle_export::sqlsplit::{Dialect, Piece, SplitError, Splitter};
use libfuzzer_sys::fuzz_target;

fn split(chunks: &[&[u8]]) -> Result<Vec<String>, SplitError> {
    let mut out = Vec::new();
    let mut splitter = Splitter::new(Dialect::Vendor);
    let mut emit = |piece: Piece<'_>| -> Result<(), SplitError> {
        match piece {
            Piece::Statement { text, verdict, .. } => {
                out.push(format!("S{verdict:?}{}", String::from_utf8_lossy(text)));
            }
            Piece::Meta { text, .. } => out.push(format!("M{}", String::from_utf8_lossy(text))),
            Piece::CopyData(data) => match out.last_mut() {
                Some(last) if last.starts_with('C') => {
                    last.push_str(&String::from_utf8_lossy(data));
                }
                _ => out.push(format!("C{}", String::from_utf8_lossy(data))),
            },
            Piece::CopyEnd => out.push("E".to_owned()),
        }
        Ok(())
    };
    for chunk in chunks {
        splitter.feed(chunk, &mut emit)?;
    }
    splitter.finish(&mut emit)?;
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, text)) = data.split_first() else {
        return;
    };
    let at = usize::from(cut) * text.len() / 256;
    let whole = split(&[text]);
    let parts = split(&[&text[..at], &text[at..]]);
    assert_eq!(whole.map_err(|e| e.line), parts.map_err(|e| e.line));
});
