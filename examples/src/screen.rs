//! The interactive chat screen (`punch chat` when stdin and stdout are a terminal): what you type stays on
//! the bottom line, behind a prompt, and everything else (messages, your own lines, status) is printed
//! above it, so an incoming message never splices into the line being typed.
//!
//! ```text
//! 14:02 · connected directly to 203.0.113.20:40112 (rtt 12.31 ms)
//! 14:02   <bob> hi!
//! 14:03 ✓ <alice> hello bob          <- ✓ once bob's punch acknowledged it (… until then, ✗ never)
//! > I am typing a long sen_
//! ```
//!
//! Two parts: [`Editor`], the line being typed (pure, tested without a terminal), and [`Screen`], which owns
//! the terminal in raw mode and draws. A delivery mark is put back on its line in place (the cursor goes up
//! and comes back) while the line is still on the screen.
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::cursor::{MoveDown, MoveToColumn, MoveUp};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::style::{Attribute, Color, Print, SetAttribute, SetForegroundColor};
use crossterm::terminal::{Clear, ClearType};
use crossterm::{queue, terminal};

/// What a key did to the line being typed.
#[derive(Debug, PartialEq, Eq)]
pub enum Edit {
    /// Nothing to do (an ignored key).
    Nothing,
    /// The line changed: draw the prompt again.
    Changed,
    /// Enter: the line, taken out of the editor.
    Submit(String),
    /// Ctrl-D on an empty line: no more lines.
    Eof,
    /// Ctrl-C.
    Interrupt,
    /// Ctrl-L: draw everything again.
    Redraw,
}

/// The line being typed, and the cursor in it (in characters).
#[derive(Debug, Default)]
pub struct Editor {
    line: Vec<char>,
    cursor: usize,
}

impl Editor {
    /// Applies one key (presses and repeats; releases are ignored).
    pub fn key(&mut self, k: KeyEvent) -> Edit {
        if k.kind == KeyEventKind::Release {
            return Edit::Nothing;
        }
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        match k.code {
            KeyCode::Char('c') if ctrl => Edit::Interrupt,
            KeyCode::Char('d') if ctrl && self.line.is_empty() => Edit::Eof,
            KeyCode::Char('d') if ctrl => self.delete(),
            KeyCode::Delete => self.delete(),
            KeyCode::Char('l') if ctrl => Edit::Redraw,
            KeyCode::Char('a') if ctrl => self.move_to(0),
            KeyCode::Char('e') if ctrl => self.move_to(self.line.len()),
            KeyCode::Char('b') if ctrl => self.move_to(self.cursor.saturating_sub(1)),
            KeyCode::Char('f') if ctrl => self.move_to(self.cursor + 1),
            KeyCode::Char('u') if ctrl => {
                self.line.drain(..self.cursor);
                self.move_to(0)
            }
            KeyCode::Char('k') if ctrl => {
                self.line.truncate(self.cursor);
                Edit::Changed
            }
            KeyCode::Char('w') if ctrl => {
                let mut start = self.cursor;
                while start > 0 && self.line[start - 1] == ' ' {
                    start -= 1;
                }
                while start > 0 && self.line[start - 1] != ' ' {
                    start -= 1;
                }
                self.line.drain(start..self.cursor);
                self.move_to(start)
            }
            KeyCode::Char(_) if ctrl => Edit::Nothing,
            KeyCode::Char(c) => {
                self.line.insert(self.cursor, c);
                self.move_to(self.cursor + 1)
            }
            KeyCode::Tab => {
                self.line.insert(self.cursor, ' ');
                self.move_to(self.cursor + 1)
            }
            KeyCode::Backspace if self.cursor > 0 => {
                self.line.remove(self.cursor - 1);
                self.move_to(self.cursor - 1)
            }
            KeyCode::Left => self.move_to(self.cursor.saturating_sub(1)),
            KeyCode::Right => self.move_to(self.cursor + 1),
            KeyCode::Home => self.move_to(0),
            KeyCode::End => self.move_to(self.line.len()),
            KeyCode::Enter => {
                self.cursor = 0;
                Edit::Submit(std::mem::take(&mut self.line).into_iter().collect())
            }
            _ => Edit::Nothing,
        }
    }

    /// Deletes the character under the cursor.
    fn delete(&mut self) -> Edit {
        if self.cursor < self.line.len() {
            self.line.remove(self.cursor);
        }
        Edit::Changed
    }

    fn move_to(&mut self, at: usize) -> Edit {
        self.cursor = at.min(self.line.len());
        Edit::Changed
    }

    /// The part of the line that fits in `width` columns around the cursor, and the cursor's column in it.
    fn visible(&self, width: usize) -> (String, usize) {
        let width = width.max(1);
        let start = (self.cursor + 1).saturating_sub(width);
        let end = (start + width).min(self.line.len());
        (self.line[start..end].iter().collect(), self.cursor - start)
    }
}

/// A delivery mark in front of one of your own lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Handed to the network, not acknowledged yet.
    Sending,
    /// Acknowledged by the partner's punch.
    Delivered,
    /// Will never be delivered (refused, or the chat ended first).
    Failed,
}

impl Mark {
    fn glyph(self) -> char {
        match self {
            Mark::Sending => '…',
            Mark::Delivered => '✓',
            Mark::Failed => '✗',
        }
    }
    fn colour(self) -> Color {
        match self {
            Mark::Sending => Color::Yellow,
            Mark::Delivered => Color::Green,
            Mark::Failed => Color::Red,
        }
    }
}

/// One line printed above the prompt.
pub enum Line<'a> {
    /// A message: who (yours when `mark` is `Some`), and the text (already escaped for the terminal).
    Message {
        who: &'a str,
        mark: Option<Mark>,
        text: &'a str,
    },
    /// A status line (path, pairing, errors, notes).
    Status(&'a str),
}

/// A printed line the screen may still put a mark back on: its id (your line's number) and how many rows
/// it took.
struct Printed {
    id: Option<u64>,
    rows: u16,
}

/// The terminal, in raw mode while this lives (restored on drop, also on a panic that unwinds).
pub struct Screen<W: Write> {
    out: W,
    colour: bool,
    width: u16,
    height: u16,
    prompt: String,
    pub editor: Editor,
    /// The lines on screen, newest last, as long as their rows fit in the terminal.
    printed: VecDeque<Printed>,
    raw: bool,
}

/// Set while a [`Screen`] holds the terminal in raw mode: log lines ([`LogWriter`]) must then start on a
/// clean line and end with CR LF.
static RAW: AtomicBool = AtomicBool::new(false);

/// Where log lines go (stderr). While the interactive screen holds the terminal, each is printed on a
/// cleared line with CR LF line ends, so that it neither mixes with the prompt nor staircases in raw mode (the
/// prompt comes back with the next screen update).
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut err = io::stderr().lock();
        if RAW.load(Ordering::Relaxed) {
            err.write_all(&for_raw_terminal(buf))?;
        } else {
            err.write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// `buf` for a terminal in raw mode: on a cleared line, every LF as CR LF.
fn for_raw_terminal(buf: &[u8]) -> Vec<u8> {
    let mut out = b"\r\x1b[2K".to_vec();
    for &b in buf {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// The mark column: after `HH:MM `.
const MARK_COLUMN: u16 = 6;

impl<W: Write> Screen<W> {
    /// A screen on `out`, `width` x `height`. `raw` puts the real terminal in raw mode (tests pass false).
    pub fn new(out: W, width: u16, height: u16, colour: bool, raw: bool) -> io::Result<Self> {
        if raw {
            terminal::enable_raw_mode()?;
            RAW.store(true, Ordering::Relaxed);
        }
        let mut s = Screen {
            out,
            colour,
            width: width.max(10),
            height: height.max(2),
            prompt: String::from("> "),
            editor: Editor::default(),
            printed: VecDeque::new(),
            raw,
        };
        s.draw_prompt()?;
        Ok(s)
    }

    /// The terminal's size changed. Lines already printed may have re-wrapped: their marks are no longer
    /// put back in place.
    pub fn resize(&mut self, width: u16, height: u16) -> io::Result<()> {
        self.width = width.max(10);
        self.height = height.max(2);
        self.printed.clear();
        self.draw_prompt()
    }

    /// Replaces the prompt (`> ` while typing; a note once input is closed).
    pub fn set_prompt(&mut self, prompt: &str) -> io::Result<()> {
        self.prompt = prompt.to_string();
        self.draw_prompt()
    }

    /// Prints `line` above the prompt, stamped `time` (`HH:MM`); `id` names your own line for [`Screen::mark`].
    pub fn print(&mut self, time: &str, line: Line, id: Option<u64>) -> io::Result<()> {
        queue!(self.out, MoveToColumn(0), Clear(ClearType::CurrentLine))?;
        let plain_len = match line {
            Line::Message { who, mark, text } => {
                let own = mark.is_some();
                queue!(self.out, Print(format!("{time} ")))?;
                match mark {
                    Some(m) => self.styled(m.colour(), &m.glyph().to_string())?,
                    None => queue!(self.out, Print(" "))?,
                }
                queue!(self.out, Print(" "))?;
                let name = format!("<{who}>");
                self.styled(if own { Color::Green } else { Color::Cyan }, &name)?;
                queue!(self.out, Print(format!(" {text}")))?;
                time.chars().count() + 3 + name.chars().count() + 1 + text.chars().count()
            }
            Line::Status(text) => {
                let s = format!("{time} · {text}");
                if self.colour {
                    queue!(
                        self.out,
                        SetAttribute(Attribute::Dim),
                        Print(&s),
                        SetAttribute(Attribute::Reset)
                    )?;
                } else {
                    queue!(self.out, Print(&s))?;
                }
                s.chars().count()
            }
        };
        queue!(self.out, Print("\r\n"))?;
        let rows = plain_len.div_ceil(usize::from(self.width)).max(1);
        self.printed.push_back(Printed {
            id,
            rows: u16::try_from(rows).unwrap_or(u16::MAX),
        });
        // Keep only what is still on the screen (the prompt takes the last row).
        let mut total: u32 = self.printed.iter().map(|p| u32::from(p.rows)).sum();
        while total >= u32::from(self.height) {
            let gone = self.printed.pop_front().map_or(0, |p| p.rows);
            total -= u32::from(gone);
        }
        self.draw_prompt()
    }

    /// Puts `mark` on your line `id`, in place, if it is still on the screen.
    pub fn mark(&mut self, id: u64, mark: Mark) -> io::Result<()> {
        let mut up: u16 = 0;
        let mut found = false;
        for p in self.printed.iter().rev() {
            up = up.saturating_add(p.rows);
            if p.id == Some(id) {
                found = true;
                break;
            }
        }
        if !found {
            return Ok(());
        }
        queue!(
            self.out,
            MoveToColumn(0),
            MoveUp(up),
            MoveToColumn(MARK_COLUMN)
        )?;
        self.styled(mark.colour(), &mark.glyph().to_string())?;
        queue!(self.out, MoveDown(up))?;
        self.draw_prompt()
    }

    /// Applies a key to the line being typed and redraws the prompt if it changed.
    pub fn key(&mut self, k: KeyEvent) -> io::Result<Edit> {
        let edit = self.editor.key(k);
        if edit != Edit::Nothing {
            self.draw_prompt()?;
        }
        Ok(edit)
    }

    /// Draws the prompt line again (the prompt, the visible part of the line, the cursor).
    pub fn draw_prompt(&mut self) -> io::Result<()> {
        let prompt_len = self.prompt.chars().count();
        let room = usize::from(self.width).saturating_sub(prompt_len + 1);
        let (text, cursor) = self.editor.visible(room);
        queue!(
            self.out,
            MoveToColumn(0),
            Clear(ClearType::CurrentLine),
            Print(&self.prompt),
            Print(text),
            MoveToColumn(u16::try_from(prompt_len + cursor).unwrap_or(u16::MAX))
        )?;
        self.out.flush()
    }

    fn styled(&mut self, colour: Color, text: &str) -> io::Result<()> {
        if self.colour {
            queue!(
                self.out,
                SetForegroundColor(colour),
                Print(text),
                SetForegroundColor(Color::Reset)
            )
        } else {
            queue!(self.out, Print(text))
        }
    }

    /// Clears the prompt line and gives the terminal back (cooked mode, cursor at the start of a line).
    pub fn close(&mut self) {
        let _ = queue!(self.out, MoveToColumn(0), Clear(ClearType::CurrentLine));
        let _ = self.out.flush();
        if self.raw {
            let _ = terminal::disable_raw_mode();
            RAW.store(false, Ordering::Relaxed);
            self.raw = false;
        }
    }
}

impl<W: Write> Drop for Screen<W> {
    fn drop(&mut self) {
        self.close();
    }
}

/// The local time of day as `HH:MM` (the C library's idea of the time zone: `TZ`, `/etc/localtime`).
pub fn clock() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let t = libc::time_t::try_from(now).unwrap_or_default();
    // SAFETY: localtime_r writes only into `tm`, which lives on this stack frame.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return format!("{:02}:{:02}", now / 3600 % 24, now / 60 % 60);
    }
    format!("{:02}:{:02}", tm.tm_hour, tm.tm_min)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }
    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }
    fn typed(e: &mut Editor, s: &str) {
        for c in s.chars() {
            e.key(key(KeyCode::Char(c)));
        }
    }

    #[test]
    fn the_editor_edits_a_line() {
        let mut e = Editor::default();
        typed(&mut e, "hello wrld");
        for _ in 0..3 {
            e.key(key(KeyCode::Left));
        }
        e.key(key(KeyCode::Char('o')));
        assert_eq!(
            e.key(key(KeyCode::Enter)),
            Edit::Submit("hello world".into())
        );
        assert_eq!(
            e.key(ctrl('d')),
            Edit::Eof,
            "Ctrl-D on an empty line ends input"
        );
        typed(&mut e, "one two");
        e.key(ctrl('w'));
        assert_eq!(e.line.iter().collect::<String>(), "one ");
        e.key(key(KeyCode::Backspace));
        e.key(ctrl('a'));
        e.key(ctrl('d'));
        assert_eq!(
            e.key(ctrl('d')),
            Edit::Changed,
            "Ctrl-D deletes in a non-empty line"
        );
        assert_eq!(e.line.iter().collect::<String>(), "e");
        e.key(ctrl('e'));
        e.key(ctrl('u'));
        assert_eq!(e.key(ctrl('c')), Edit::Interrupt);
        let release = KeyEvent {
            kind: KeyEventKind::Release,
            ..key(KeyCode::Char('x'))
        };
        assert_eq!(e.key(release), Edit::Nothing);
        assert!(e.line.is_empty());
    }

    #[test]
    fn a_long_line_scrolls_around_the_cursor() {
        let mut e = Editor::default();
        typed(&mut e, "abcdefghij");
        assert_eq!(e.visible(4), ("hij".into(), 3), "the cursor stays in view");
        e.key(key(KeyCode::Home));
        assert_eq!(e.visible(4), ("abcd".into(), 0));
    }

    /// The screen's output through a terminal emulator: what a person sees.
    fn seen(bytes: &[u8]) -> Vec<String> {
        let mut p = vt100::Parser::new(6, 40, 0);
        p.process(bytes);
        p.screen().rows(0, 40).collect()
    }

    #[test]
    fn lines_print_above_what_is_being_typed_and_marks_change_in_place() {
        let mut out = Vec::new();
        {
            let mut s = Screen::new(&mut out, 40, 6, false, false).unwrap();
            for c in "I am typ".chars() {
                s.key(key(KeyCode::Char(c))).unwrap();
            }
            let mine = Line::Message {
                who: "alice",
                mark: Some(Mark::Sending),
                text: "first",
            };
            s.print("14:03", mine, Some(1)).unwrap();
            let theirs = Line::Message {
                who: "bob",
                mark: None,
                text: "interrupting!",
            };
            s.print("14:03", theirs, None).unwrap();
            s.print("14:04", Line::Status("path: relay"), None).unwrap();
            s.mark(1, Mark::Delivered).unwrap();
        }
        let rows = seen(&out);
        assert_eq!(rows[0], "14:03 ✓ <alice> first");
        assert_eq!(rows[1], "14:03   <bob> interrupting!");
        assert_eq!(rows[2], "14:04 · path: relay");
        assert_eq!(rows[3], "", "closing clears the prompt line");
        let mut out = Vec::new();
        {
            let mut s = Screen::new(&mut out, 40, 6, false, false).unwrap();
            for c in "I am typ".chars() {
                s.key(key(KeyCode::Char(c))).unwrap();
            }
            s.print("14:03", Line::Status("x"), None).unwrap();
            std::mem::forget(s); // as seen while running, before close
        }
        assert_eq!(seen(&out)[1], "> I am typ");
    }

    #[test]
    fn a_mark_on_a_line_scrolled_off_is_dropped() {
        let mut out = Vec::new();
        let mut s = Screen::new(&mut out, 20, 3, false, false).unwrap();
        let mine = Line::Message {
            who: "a",
            mark: Some(Mark::Sending),
            text: "x",
        };
        s.print("00:00", mine, Some(7)).unwrap();
        for _ in 0..3 {
            s.print("00:00", Line::Status("later"), None).unwrap();
        }
        let before = out_len(&s);
        s.mark(7, Mark::Delivered).unwrap();
        assert_eq!(out_len(&s), before, "nothing drawn for a line that is gone");
    }

    #[test]
    fn log_lines_on_a_raw_terminal_start_clean_and_end_with_cr_lf() {
        let got = for_raw_terminal(b"WARN one\nWARN two\n");
        assert_eq!(got, b"\r\x1b[2KWARN one\r\nWARN two\r\n");
    }

    fn out_len(s: &Screen<&mut Vec<u8>>) -> usize {
        s.out.len()
    }
}
