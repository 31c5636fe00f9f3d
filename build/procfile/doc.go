// Package procfile parses an app's Procfile the way Heroku and Dokku do, with
// the stricter process type names a platform needs.
//
// A Procfile declares an app's process types, one per line:
//
//	# comment
//	web: bundle exec puma -C config/puma.rb -b tcp://0.0.0.0:$PORT
//	worker: bundle exec sidekiq
//	release: bundle exec rails db:migrate
//
// # Format
//
// Parse reads the file line by line and keeps the order of the processes.
//
//   - A line is `<type>: <command>`. The type ends at the first ':'; the rest
//     of the line, with surrounding whitespace removed, is the command, so
//     colons inside the command (`tcp://0.0.0.0:$PORT`) are kept. The space
//     after the colon is optional (`web:cmd`).
//   - Blank lines and lines starting with '#' (or, as Dokku allows, "//") are
//     ignored. A '#' later in a line is part of the command: the command runs
//     under a shell (`/bin/sh -c`), as on Heroku, and the shell drops it.
//   - Line endings may be LF or CRLF; a leading UTF-8 byte order mark is
//     skipped; whitespace (spaces, tabs) around a line and around the
//     command is trimmed. The type must end right at the ':' ("web : x" is
//     an error, as on Dokku).
//   - The type `web` (Web) receives HTTP traffic; the type `release`
//     (ReleaseType) is the release phase command that runs once per release
//     before the new processes start. Procfile.Web and Procfile.Release look
//     them up.
//
// Process type names become instance names and Kubernetes object names, so
// each must be a DNS label (internal/names.Label): 1 to 63 lower-case letters,
// digits and '-', starting and ending with a letter or digit. This is the rule
// of Dokku's strict mode. Heroku also accepts upper-case letters and '_'
// (`Web_1`, `Worker`); Parse rejects those with an error that says so and
// suggests the label form:
//
//	procfile: line 3: "Web_1" is not a valid process type: ...; use "web-1"
//
// # Errors
//
// Parse rejects, naming the line:
//
//   - a line without ':' or with nothing before it (ErrSyntax), a bare
//     carriage return (an old Mac line ending), a NUL byte, or a process line
//     that is not valid UTF-8 (ErrSyntax);
//   - a process type that is not a DNS label (ErrInvalidType);
//   - an empty command, or one that is only a comment (ErrEmptyCommand);
//   - a process type that appears twice (ErrDuplicate);
//   - input over the limits below (ErrTooLarge).
//
// Parse reports all errors, not just the first: the error it returns joins
// (errors.Join) one *ParseError per bad line, in line order; after MaxErrors
// (10) of them it stops reading. Branch with errors.Is on the sentinels and use errors.As to reach
// the first *ParseError (its Line and Type). On any error Parse returns a nil
// *Procfile. An input without any process line is not an error: it yields a
// Procfile with no processes, and callers decide whether they need a web
// process.
//
// Compared with Heroku, which silently ignores lines it cannot read, and with
// Dokku (procfile-util), Parse is as strict as Dokku's strict mode, except
// that it keeps a trailing " # comment" in the command instead of cutting it
// (the shell ignores it either way, and cutting would break a quoted '#'), and
// that it reports every bad line rather than the first.
//
// # Limits
//
//   - MaxSize (64 KiB): the input, and the Procfile as String writes it back.
//     Parse reads at most MaxSize+1 bytes from its reader.
//   - MaxLineLength (4096 bytes): any line as written (without its line
//     ending), and each process line as String writes it back.
//   - MaxProcesses (100): process types per Procfile.
//
// # Writing
//
// Procfile.String and Procfile.WriteTo write the canonical form, one
// `<type>: <command>` line per process in order, LF line endings, no comments.
// Parsing the canonical form gives back the same types and commands.
// Procfile.Validate checks that a Procfile built or changed in code keeps to
// the rules, so that this holds for it too.
package procfile
