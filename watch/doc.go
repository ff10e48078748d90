// Package watch is chartee's console automation: it finds patterns in a
// tee's output stream and acts on them.
//
// A Matcher is the one pattern matcher of a tee: it is fed the output
// stream chunk by chunk, in order, and reports every match of every
// pattern, each exactly once whatever the chunk boundaries. It keeps a
// bounded look-back window (LookBack bytes of the current line), so a
// hundred patterns cost one pass per chunk, not a goroutine each.
//
// A Watcher is the device of a tee's watch leg: the engine writes the
// output stream to it like to any other leg (drop policy, so a busy
// watcher never slows the console), it runs the Matcher and hands matches
// to the actions (event, log, exec, webhook, send), which run apart from
// the leg with bounded concurrency and timeouts.
//
// ParseEscapes turns the text of `chartee ctl send` (\r \n \t \xHH) into
// bytes; StripANSI removes terminal escape sequences from a stream.
package watch
