//! `rzctl letters --endpoint URL --as municipality-0197 --municipality 0197 [--client-key K]
//! [--limit N]`: a municipality's letters to its residents, as notification's `ListLetters` gives
//! them (the texts are sealed at rest; this is how staff read them). Without `--client-key` one line
//! a letter; with it, each letter in full. The folder's `staff.jwt`, when there is one, is sent as
//! the person calling; the call is written to notification's audit trail.

use rz_proto::notification::v1 as pb;
use rz_proto::notification::v1::notification_service_client::NotificationServiceClient;

use crate::audit::request;
use crate::client::{self, Party};

#[derive(Debug, clap::Args)]
pub struct Letters {
    /// The notification service.
    #[arg(long, value_name = "URL")]
    endpoint: String,
    #[command(flatten)]
    party: Party,
    /// The municipality (CBS code) whose letters to list; a municipality must name itself.
    #[arg(long, value_name = "CBS")]
    municipality: String,
    /// One resident's letters, in full.
    #[arg(long, value_name = "K")]
    client_key: Option<String>,
    /// At most this many letters (at most 1000).
    #[arg(long, value_name = "N", default_value_t = 20)]
    limit: u32,
}

impl Letters {
    pub async fn run(self) -> Result<(), String> {
        let mut c = NotificationServiceClient::new(self.party.channel(&self.endpoint).await?);
        let full = self.client_key.is_some();
        let r = pb::ListLettersRequest {
            municipality: self.municipality,
            client_key: self.client_key.unwrap_or_default(),
            limit: self.limit,
        };
        let letters = c
            .list_letters(request(&self.party, r)?)
            .await
            .map_err(client::failed("ListLetters"))?
            .into_inner()
            .letters;
        print!("{}", letters_text(&letters, full));
        Ok(())
    }
}

/// One line a letter (date, kind, client key), or each letter in full.
pub fn letters_text(letters: &[pb::Letter], full: bool) -> String {
    if letters.is_empty() {
        return "no letters\n".to_owned();
    }
    let mut out = String::new();
    if !full {
        out.push_str("CREATED\tKIND\tCLIENT KEY\n");
    }
    for l in letters {
        let day = l.created_at.get(..10).unwrap_or(&l.created_at);
        if full {
            out.push_str(&format!(
                "== {day} {} ({})\n{}\n\n",
                l.kind, l.client_key, l.text
            ));
        } else {
            out.push_str(&format!("{day}\t{}\t{}\n", l.kind, l.client_key));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_names_each_letter_and_a_residents_letters_are_shown_in_full() {
        let l = pb::Letter {
            kind: "decision_granted".into(),
            client_key: "ab".repeat(16),
            created_at: "2022-07-15T10:00:00Z".into(),
            text: "Gemeente Aalten\nBeste ...".into(),
            ..Default::default()
        };
        let list = letters_text(std::slice::from_ref(&l), false);
        assert!(
            list.contains("2022-07-15\tdecision_granted\tabab"),
            "{list}"
        );
        assert!(!list.contains("Gemeente Aalten"));
        let full = letters_text(&[l], true);
        assert!(full.contains("Gemeente Aalten\nBeste"), "{full}");
        assert_eq!(letters_text(&[], false), "no letters\n");
    }
}
