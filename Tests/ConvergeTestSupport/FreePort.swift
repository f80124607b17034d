import Foundation

/// A free TCP port on 127.0.0.1, from binding port 0: for a server a test starts (another process may still take it
/// first, so a server that finds it taken moves on).
public func freeLoopbackPort() throws -> Int {
    let socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(socket) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(socket, $0, length) == 0 && getsockname(socket, $0, &length) == 0
        }
    }
    guard bound else { throw FreePortError() }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// No port could be bound on 127.0.0.1.
public struct FreePortError: Error, CustomStringConvertible {
    public var description: String { "no free port on 127.0.0.1" }
}
