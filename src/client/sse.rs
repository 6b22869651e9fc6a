//! Reading a `text/event-stream` (server-sent events) as it arrives: bytes
//! in, whole messages out.

/// One message of the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseMessage {
    /// Its `id:`, when it had one.
    pub id: Option<String>,
    /// Its `event:`, `message` when it had none (as the SSE standard says).
    pub event: String,
    /// Its `data:` lines, joined with newlines.
    pub data: String,
}

/// Collects bytes and hands out the messages they complete.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of a line not yet ended.
    partial: Vec<u8>,
    /// Fields of the message being read.
    current: SseMessage,
    /// Whether the message being read has a field (a comment alone is not a message).
    has_field: bool,
}

impl SseParser {
    /// Reads `bytes`, returning the messages they end.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseMessage> {
        let mut messages = Vec::new();
        for &byte in bytes {
            if byte != b'\n' {
                self.partial.push(byte);
                continue;
            }
            let mut line = std::mem::take(&mut self.partial);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if let Some(message) = self.line(&String::from_utf8_lossy(&line)) {
                messages.push(message);
            }
        }
        messages
    }

    fn line(&mut self, line: &str) -> Option<SseMessage> {
        if line.is_empty() {
            let mut message = std::mem::take(&mut self.current);
            if !std::mem::take(&mut self.has_field) {
                return None;
            }
            if message.event.is_empty() {
                message.event = "message".to_string();
            }
            return Some(message);
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => self.current.id = Some(value.to_string()),
            "event" => self.current.event = value.to_string(),
            "data" => {
                if !self.current.data.is_empty() {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
            }
            // `retry:` and unknown fields change nothing here.
            _ => return None,
        }
        self.has_field = true;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_at_blank_lines_whatever_the_chunks() {
        let stream = b": keep-alive\n\nid: 7\nevent: node_phase\ndata: {\"a\":1}\n\nevent: gap\r\ndata: x\r\ndata: y\r\n\r\n";
        let mut parser = SseParser::default();
        let mut messages = Vec::new();
        for chunk in stream.chunks(5) {
            messages.extend(parser.feed(chunk));
        }
        assert_eq!(
            messages,
            [
                SseMessage {
                    id: Some("7".into()),
                    event: "node_phase".into(),
                    data: "{\"a\":1}".into()
                },
                SseMessage {
                    id: None,
                    event: "gap".into(),
                    data: "x\ny".into()
                },
            ]
        );
    }
}
