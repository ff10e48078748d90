// Package config reads chartee's YAML configuration strictly: every
// unknown key, wrong type, duplicate name, missing required key or
// impossible combination is reported with file, line and column, all of
// them at once, never just the first (Parse, Load: the error is an
// ErrorList). It also parses backend specs from the command line
// (ParseSpec, ParseDeviceSpec, SpecToJSON) and from API bodies
// (DecodeBackendJSON, DecodeDeviceJSON), with the same keys and the same
// checks as the file. Nothing here opens a device or a socket.
//
// # Why a schema walk
//
// go-yaml's KnownFields(true) is lost as soon as a node is decoded with
// Node.Decode, which is how a backend's own options would be decoded once
// its type is known; a typo in tls, rotate or reconnect would be accepted
// silently. So the file is parsed into a yaml.Node tree and walked here:
// each mapping's keys are checked against a schema read from the yaml tags
// of the target struct (schema.go), at every depth, and each scalar is
// decoded on its own into its field, so a type error points at the value.
// Problems are collected, not returned at the first.
//
// # File shape
//
//	control: {socket, listen, token_file}   # listen needs token_file
//	metrics: {listen}
//	log: {level: debug|info|warn|error, format: text|json}
//	tees:
//	  - name, input: shared|exclusive, exclusive_idle, input_buffer,
//	    scrollback, drain_timeout,
//	    frontend: {type, <type keys>, reconnect: {initial, max},
//	               failover: [{type, <type keys>}, ...]}
//	    backends:
//	      - {name, type, input, queue, on_overflow: drop|block|disconnect,
//	         replay, <type keys>}
//
// Sizes take units (4096, 4KiB, 1MiB), durations need one (100ms, 5s).
// Top-level keys starting with "x-" are ignored, to hold YAML anchors. In
// the frontend, `reconnect` is always the tee's own backoff, also for
// tcp-connect (whose spec has a reconnect section for when it is a
// backend): the engine reopens a failed frontend itself. Listening types
// cannot be a frontend or a failover device. Non-fatal findings, like a
// listener reachable from the network without TLS, go to Config.Warnings.
//
// # Command-line specs
//
// One argument, QEMU-style:
//
//	TYPE,key=value,key=value,...
//
// where:
//
//   - TYPE is the backend type (file, tcp-listen, serial, ...); writing
//     type=TYPE anywhere instead works too.
//   - Keys are those of the config file. Nested keys are written with
//     dots: tls.cert=/etc/c.pem, rotate.max_size=10MiB.
//   - Values read like YAML plain scalars: 115200 is a number, true a
//     boolean, 4KiB a size, 100ms a duration. A key that wants a string
//     takes the text as written (mode=0660 is "0660"); an empty value is
//     empty.
//   - A comma inside a value is written twice, as QEMU does:
//     banner=hello,, world is "hello, world".
//   - A list (allow, command, env) separates its items with ';':
//     allow=10.0.0.0/8;127.0.0.1/32; a ';' inside an item is written
//     twice (an item cannot start with ';'). An empty value is an empty
//     list. Lists of sections are only possible in YAML or JSON.
//
// For example:
//
//	file,name=cap2,path=/tmp/c.log,format=raw
//	tcp-listen,name=ops,listen=127.0.0.1:7000,protocol=telnet
//
// Errors name the key and its column in the argument:
//
//	spec: key "pth" (at column 6): unknown key for file; did you mean "path"? (known: ...)
//
// An argument starting with '@' names a YAML file holding one backend (or
// device) mapping with the keys of the config file: @spec.yaml. Its errors
// carry file:line:col.
//
// # API bodies
//
// A backend body is a JSON object with the keys of a backend in the file;
// a device body (frontend swap) has a type and the type's keys. JSON goes
// through the same walk (its node tree built from encoding/json tokens, so
// only JSON is accepted and a JSON string stays a string), with the same
// strictness; errors name the key path from the object's root:
//
//	tls.cert: unknown key for tls; did you mean "cert"? (known: ...)
package config
