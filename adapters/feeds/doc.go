// Package feeds is the partner feeds on NATS JetStream (docs/feeds.md): a
// feed server embedded in the process (Server: its own nats-server with
// decentralised authentication, Authority), the relay that publishes to
// each institution's feed what the access policy lets it see of every event
// of its cases when it is sent (Relay: exactly-once in effect, reveals and
// retracts when consents and orders change), and the reference subscriber
// that reads a feed with partner credentials and verifies the hash chains
// (Dial, Tail). RunFanoutBench measures the fan-out.
package feeds
