//! Channel `smtp`: each letter as a plain-text e-mail, sent over one SMTP conversation per letter
//! (EHLO, MAIL FROM, RCPT TO, DATA with dot-stuffing, QUIT) to a relay.
//!
//! **No TLS and no authentication**: the channel talks to a mail relay on the same host or in the
//! same cluster (a local Postfix, a sidecar), which does the onward delivery with TLS. Do not
//! point it at a relay across an untrusted network.
//!
//! **Who receives it**: residents have no e-mail address in access today, so the channel does not
//! pretend to mail residents. Each letter goes to its municipality's mailroom
//! (`notification.letters.smtp.mailroom.<cbs>`), which prints and posts it or hands it on; a
//! letter of a municipality without a mailroom address fails at once with that reason. When
//! residents' addresses exist the recipient becomes the letter's own.
//!
//! Every message carries `Message-ID: <letter id@regiozorg>` and `X-Regiozorg-Letter`, the same
//! on every attempt, so the mailroom can drop a duplicate (sending is at least once). Error
//! reasons name the SMTP step and reply code only, never the relay's reply text (it may echo
//! addresses). A 5xx reply is permanent, anything else transient.

use chrono::Utc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub use crate::config::SmtpConfig;
use crate::dispatch::{ChannelError, LetterChannel, SendFuture};
use crate::store::StoredLetter;

#[derive(Debug, Clone)]
pub struct SmtpChannel {
    config: SmtpConfig,
}

impl SmtpChannel {
    pub fn new(config: SmtpConfig) -> Result<Self, String> {
        config.validate()?;
        Ok(Self { config })
    }

    async fn deliver(&self, letter: &StoredLetter) -> Result<(), ChannelError> {
        let to = self
            .config
            .mailroom
            .get(&letter.municipality)
            .ok_or_else(|| {
                ChannelError::Permanent(format!(
                    "no mailroom address for municipality {} (notification.letters.smtp.mailroom)",
                    letter.municipality
                ))
            })?;
        let stream = TcpStream::connect(self.config.relay.as_str())
            .await
            .map_err(|e| ChannelError::Transient(format!("connect to relay: {e}")))?;
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        expect(&mut read, "greeting", &[220]).await?;
        command(&mut write, &format!("EHLO {}", self.config.helo)).await?;
        let ehlo = expect(&mut read, "EHLO", &[250]).await?;
        let eight_bit = ehlo.iter().any(|l| {
            l.get(4..)
                .is_some_and(|e| e.eq_ignore_ascii_case("8BITMIME"))
        });
        let body_param = if eight_bit { " BODY=8BITMIME" } else { "" };
        command(
            &mut write,
            &format!("MAIL FROM:<{}>{body_param}", self.config.from),
        )
        .await?;
        expect(&mut read, "MAIL FROM", &[250]).await?;
        command(&mut write, &format!("RCPT TO:<{to}>")).await?;
        expect(&mut read, "RCPT TO", &[250, 251]).await?;
        command(&mut write, "DATA").await?;
        expect(&mut read, "DATA", &[354]).await?;
        let message = message(&self.config.from, to, letter);
        write
            .write_all(message.as_bytes())
            .await
            .map_err(|e| ChannelError::Transient(format!("send message: {e}")))?;
        expect(&mut read, "end of data", &[250]).await?;
        // The relay has taken the letter: a failing QUIT does not undo that.
        if command(&mut write, "QUIT").await.is_ok() {
            let _ = expect(&mut read, "QUIT", &[221]).await;
        }
        Ok(())
    }
}

impl LetterChannel for SmtpChannel {
    fn name(&self) -> &'static str {
        "smtp"
    }

    fn send<'a>(&'a self, letter: &'a StoredLetter) -> SendFuture<'a> {
        Box::pin(self.deliver(letter))
    }
}

async fn command(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    line: &str,
) -> Result<(), ChannelError> {
    write
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .map_err(|e| ChannelError::Transient(format!("send {}: {e}", verb(line))))
}

/// The command's verb, for error messages (never its argument: it holds an address).
fn verb(line: &str) -> &str {
    line.split([' ', ':']).next().unwrap_or("")
}

/// Reads one (possibly multi-line) reply and checks its code; returns its lines.
async fn expect(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    step: &str,
    want: &[u16],
) -> Result<Vec<String>, ChannelError> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = read
            .read_line(&mut line)
            .await
            .map_err(|e| ChannelError::Transient(format!("{step}: read reply: {e}")))?;
        if n == 0 {
            return Err(ChannelError::Transient(format!(
                "{step}: relay closed the connection"
            )));
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
        let last = line.as_bytes().get(3) != Some(&b'-');
        lines.push(line);
        if !last {
            continue;
        }
        return match code {
            Some(c) if want.contains(&c) => Ok(lines),
            Some(c) if (500..600).contains(&c) => Err(ChannelError::Permanent(format!(
                "{step}: relay answered {c}"
            ))),
            Some(c) => Err(ChannelError::Transient(format!(
                "{step}: relay answered {c}"
            ))),
            None => Err(ChannelError::Transient(format!("{step}: malformed reply"))),
        };
    }
}

/// The message as sent after DATA: headers, the letter text with CRLF line ends and
/// dot-stuffing, and the terminating `.` line.
pub fn message(from: &str, to: &str, letter: &StoredLetter) -> String {
    let mut out = String::with_capacity(letter.text.len() + 512);
    let headers = [
        format!("From: <{from}>"),
        format!("To: <{to}>"),
        format!("Subject: Brief {} {}", letter.kind, letter.id),
        format!("Date: {}", Utc::now().to_rfc2822()),
        format!("Message-ID: <{}@regiozorg>", letter.id),
        format!("X-Regiozorg-Letter: {}", letter.id),
        format!("X-Regiozorg-Municipality: {}", letter.municipality),
        "MIME-Version: 1.0".to_owned(),
        "Content-Type: text/plain; charset=utf-8".to_owned(),
        "Content-Transfer-Encoding: 8bit".to_owned(),
    ];
    for h in headers {
        out.push_str(&h);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    for line in letter.text.lines() {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn letter(text: &str) -> StoredLetter {
        StoredLetter {
            id: Uuid::now_v7(),
            claim: Uuid::now_v7(),
            kind: "decision_granted".into(),
            municipality: "0222".into(),
            client_key: "k".into(),
            text: text.into(),
            created_at: Utc::now(),
            attempts: 0,
        }
    }

    #[test]
    fn the_body_is_dot_stuffed_with_crlf_line_ends() {
        let l = letter("Beste,\n.punt vooraan\n..twee\nslot\n");
        let m = message("a@b.nl", "c@d.nl", &l);
        assert!(
            m.ends_with("\r\n\r\nBeste,\r\n..punt vooraan\r\n...twee\r\nslot\r\n.\r\n"),
            "{m}"
        );
        assert!(m.contains(&format!("Message-ID: <{}@regiozorg>\r\n", l.id)));
        assert!(!m.replace("\r\n", "").contains('\n'), "bare LF in {m}");
    }

    #[test]
    fn addresses_are_checked_and_named_by_key() {
        let mut c = SmtpConfig {
            from: "brieven@regio.example".into(),
            mailroom: [(
                "0222".to_string(),
                "postkamer@doetinchem.example".to_string(),
            )]
            .into(),
            ..SmtpConfig::default()
        };
        assert_eq!(c.validate(), Ok(()));
        c.mailroom
            .insert("1859".into(), "post>\r\nRCPT TO:<x@y".into());
        assert!(c.validate().unwrap_err().contains("smtp.mailroom.1859"));
        c.mailroom.remove("1859");
        c.from = "geen adres".into();
        assert!(c.validate().unwrap_err().contains("smtp.from"));
    }
}
