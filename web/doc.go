// Package web is chartee's browser console: an HTTP(S) service with a
// login, an index of the consoles a user may see, and one page per console
// with a terminal (xterm.js, embedded) joined to the tee by a WebSocket.
//
// Each browser viewer is a leg like any other: the service attaches, per
// tee and role, a listening source ("web:view", "web:operate",
// "web:admin") whose clients are the WebSockets, so a viewer gets the
// tee's per-leg queue, overflow policy and slow-viewer isolation exactly
// as a TCP client does, and the engine enforces who may type.
//
// Protocol on the WebSocket (see proto.go): binary frames carry console
// bytes both ways; text frames carry small JSON control messages. The
// server tells the page the stream offset where its bytes start ("hello")
// and wherever the next byte is not the one after the last ("at": output
// dropped for this viewer, or older than the scrollback on resume), so the
// page always knows the offset of every byte it holds. On reconnect it
// asks for ?from=<offset>: the engine replays the missed bytes from the
// tee's scrollback, or the server says exactly how many were lost.
package web
