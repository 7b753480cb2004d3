/* cp2p dht --control MA: run the stdin commands on a running cp2pd. */
#ifndef CP2P_APPS_DHT_CONTROL_H
#define CP2P_APPS_DHT_CONTROL_H

/* control: the daemon's control socket (/unix/<path> or /ip4|ip6/<ip>/tcp/<port>).
 * Returns the exit code: 0, or 1 when the daemon cannot be reached or the
 * socket broke. */
int cp2p_dht_control_run(const char *control);

#endif
