"""Outbound notifications: store webhooks (HMAC-signed) and e-mail, through an outbox.

The change feed is read by every server process (live bus); each one enqueues the updates a
store asked for into `notification_delivery`, insert-or-ignore, so each is sent once. The
delivery worker sends what is due, retries with backoff, and keeps the log. A lab alert
(server.domain.spc) is enqueued the same way, as one e-mail to each lab manager with an address.
"""
