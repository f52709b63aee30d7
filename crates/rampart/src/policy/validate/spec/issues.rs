//! Collecting compilation issues: every one found, each placed in its file, at its JSON pointer
//! and line.

use std::path::PathBuf;

use super::locate;
use super::pointer;

/// One problem with a contract, placed where the operator has to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecIssue {
    /// The file that holds the offending value (the contract or a file it references).
    pub file: PathBuf,
    /// JSON pointer to the value inside that file (`""` for the file as a whole).
    pub pointer: String,
    /// 1-based line of the value, when the text could be placed.
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for SpecIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        let at = if self.pointer.is_empty() {
            "(file)"
        } else {
            &self.pointer
        };
        write!(f, ": {at}: {}", self.message)
    }
}

/// A file that is part of the contract, and where its content sits in the bundled document.
#[derive(Debug)]
pub(super) struct SourceFile {
    pub(super) path: PathBuf,
    pub(super) text: String,
    /// Pointer prefix of the file's content in the bundled document (`""` for the main file).
    pub(super) prefix: String,
}

struct Pending {
    file: usize,
    pointer: String,
    line: Option<usize>,
    message: String,
}

/// Issues as they are found; lines are looked up once, at the end.
#[derive(Default)]
pub(super) struct Issues {
    pending: Vec<Pending>,
}

impl Issues {
    /// An issue at `pointer` inside file number `file`, with a line when it is already known
    /// (a syntax error).
    pub(super) fn in_file(
        &mut self,
        file: usize,
        pointer: impl Into<String>,
        line: Option<usize>,
        message: impl Into<String>,
    ) {
        self.pending.push(Pending {
            file,
            pointer: pointer.into(),
            line,
            message: message.into(),
        });
    }

    /// An issue at `pointer` in the bundled document, placed back in the file it came from.
    pub(super) fn at(&mut self, files: &[SourceFile], pointer: &str, message: impl Into<String>) {
        let (file, local) = files
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, f)| pointer::is_within(pointer, &f.prefix))
            .map_or((0, pointer), |(i, f)| (i, &pointer[f.prefix.len()..]));
        self.in_file(file, local, None, message);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The issues with their files and lines.
    pub(super) fn finish(self, files: &[SourceFile]) -> Vec<SpecIssue> {
        let mut lines: Vec<Option<usize>> = self.pending.iter().map(|p| p.line).collect();
        for (index, file) in files.iter().enumerate() {
            let unplaced: Vec<usize> = (0..self.pending.len())
                .filter(|&i| self.pending[i].file == index && lines[i].is_none())
                .collect();
            if unplaced.is_empty() {
                continue;
            }
            let pointers: Vec<&str> = unplaced
                .iter()
                .map(|&i| self.pending[i].pointer.as_str())
                .collect();
            for (&i, line) in unplaced.iter().zip(locate::lines(&file.text, &pointers)) {
                lines[i] = line;
            }
        }
        self.pending
            .into_iter()
            .zip(lines)
            .map(|(p, line)| SpecIssue {
                file: files
                    .get(p.file)
                    .map(|f| f.path.clone())
                    .unwrap_or_default(),
                pointer: p.pointer,
                line,
                message: p.message,
            })
            .collect()
    }
}
