// Package cluster tests Switchboard as SPEC §8 deploys it: several
// `switchboard serve` processes on one PostgreSQL database behind Kamailio
// (deploy/kamailio/dispatcher.cfg). Its tests build the binary once, start
// Kamailio and the nodes as child processes on free loopback ports, and
// drive them over SIP from outside: a registration through one node that
// serves a call arriving on another, a rotating group across nodes, a node
// killed under load and a rolling restart under load.
//
// The package has no code of its own outside its tests.
package cluster
