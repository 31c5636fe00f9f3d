// Package httpaddon lets third parties offer add-ons without writing Go:
// Provisioner is an addons.Provisioner that speaks a small JSON protocol to
// a provider's HTTP service, and Handler serves any addons.Provisioner over
// the same protocol. The protocol follows Flynn's provider protocol and
// Heroku's Add-on Partner API, cut down to what the contract needs.
//
// # Protocol
//
// Every request carries Authorization (Bearer or Basic, as configured) and
// Accept: application/json; request bodies are JSON. All paths are under
// the provider's base URL.
//
//	POST   /resources              provision
//	GET    /resources/{id}         read a resource and its current config
//	DELETE /resources/{id}         deprovision
//	PUT    /resources/{id}/plan    change plan         (optional)
//	POST   /resources/{id}/rotate  rotate credentials  (optional)
//	POST   /resources/{id}/retire  retire the old ones (optional)
//
// Provision sends {"request_id": "...", "app": "...", "plan": "..."} with
// the header Idempotency-Key set to the request id. The provider must be
// idempotent by it: the same key always answers with the same resource,
// which is what makes retries after timeouts and lost responses safe. A
// key reused for a different app or plan, or for a deprovisioned resource,
// is answered with 409.
//
// A resource is answered as
//
//	{"id": "r-123", "app": "shop", "plan": "small",
//	 "config": {"URL": "amqp://u:p@host/vhost"}, "created_at": "RFC 3339"}
//
// with 200 or 201. Config keys are suffixes (A-Z, 0-9, '_'); the platform
// prefixes them with the attachment name (URL becomes e.g. QUEUE_URL).
// A provider that provisions asynchronously answers 202 (optionally with
// Retry-After) until the resource is ready; the client repeats the same
// POST, with the same Idempotency-Key, until it gets the resource or its
// context ends.
//
// DELETE answers 200 or 204 when the resource is gone, including when it
// was already gone (410 is accepted too); 404 only for an id never issued.
// GET answers 404 for unknown and deprovisioned ids. PUT .../plan sends
// {"plan": "..."} and answers the resource; rotate answers the resource
// with the new config; retire answers 204.
//
// Errors are answered with a status and {"error": {"code": "...",
// "message": "..."}}. Codes map to the contract's errors: invalid_request,
// invalid_name, unknown_plan, not_found, conflict, unsupported. Status 404
// means not_found and 409 conflict even without a body; 401 and 403 mean
// the credentials were refused. 408, 429 and 5xx, and failures to connect
// or to read a response, are transient: the client retries with
// exponential backoff and full jitter, honouring Retry-After, up to
// Config.MaxAttempts. The provider's message is never copied into errors,
// since it could echo a credential; the status and code are.
//
// Responses larger than Config.MaxResponseBytes are refused, and each
// attempt is bounded by Config.AttemptTimeout.
package httpaddon
