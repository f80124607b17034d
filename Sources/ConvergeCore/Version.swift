/// This build's version: `converge version` prints it, and the daemon answers it on `GET /version`.
public let convergeVersion = "0.1.0"
