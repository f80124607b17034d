extension ConvergeServer {
    /// What the HTTP surface allows and how long it waits, from `converge serve`'s settings (which check the values at
    /// start).
    public struct Settings: Sendable {
        /// The commands (argv[0], matched exactly) an exec provisioner declared through the API may run. Any other
        /// exec provisioner comes only from the manifests, the reviewed repository: an API token is not a shell.
        public var allowedExecCommands: Set<String>
        /// How long a client has to send a whole request, head and body, counted from when its connection opened or
        /// its previous answer was sent; past it the connection is closed.
        public var requestTimeout: Duration
        /// How many connections are open at once; more wait in the listen backlog until one closes.
        public var maxConnections: Int

        public init(allowedExecCommands: Set<String>, requestTimeout: Duration, maxConnections: Int) {
            self.allowedExecCommands = allowedExecCommands
            self.requestTimeout = requestTimeout
            self.maxConnections = maxConnections
        }
    }
}
