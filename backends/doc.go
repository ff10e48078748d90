// Package backends holds chartee's concrete device types, one file per
// type, each registering itself with the chardev registry from init. Import
// it for its side effects (the appliance does); the engine never does.
package backends
