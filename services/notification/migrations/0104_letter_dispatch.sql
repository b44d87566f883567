-- Sending residents' letters through a channel (post spool, e-mail): the dispatch state of each
-- letter. `pending` -> `sent` (never sent again) or `failed` (after the retry budget, or at once
-- for a permanent error; `last_error` holds the reason). With the channel `none` letters stay
-- `pending` (stored only); switching a channel on later sends every letter still pending.
ALTER TABLE letters ADD COLUMN status TEXT NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'sent', 'failed'));
ALTER TABLE letters ADD COLUMN attempts INT NOT NULL DEFAULT 0;
ALTER TABLE letters ADD COLUMN next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now();
-- The dispatcher that holds the letter (set by a claim with a lease, checked when the outcome is
-- written), so two replicas never send the same letter at once.
ALTER TABLE letters ADD COLUMN claim UUID;
-- The channel that sent it (post, smtp).
ALTER TABLE letters ADD COLUMN channel TEXT;
ALTER TABLE letters ADD COLUMN sent_at TIMESTAMPTZ;
ALTER TABLE letters ADD COLUMN failed_at TIMESTAMPTZ;
ALTER TABLE letters ADD COLUMN last_error TEXT;
CREATE INDEX letters_due ON letters (next_attempt_at) WHERE status = 'pending';
CREATE INDEX letters_failed ON letters (municipality, failed_at) WHERE status = 'failed';
