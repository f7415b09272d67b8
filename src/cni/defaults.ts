/** Default paths of the CNI endpoint (the shim, native/cni/userlay-cni.c, has the same). */

/** The agent's unix socket the shim connects to. */
export const DEFAULT_CNI_SOCKET = '/run/userlay/cni.sock';
/** The agent's CNI state directory: attachments/, networks/ (host-local), queue/ (DELs). */
export const DEFAULT_CNI_STATE_DIR = '/var/lib/userlay/cni';
