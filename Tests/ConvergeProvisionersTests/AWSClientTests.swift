import ConvergeProvisioners
import Testing

/// How AWS error answers are read, and the XML the drivers read: the parts of `AWSClient` that need no emulator.
@Suite struct AWSClientTests {
    @Test func errorAnswers_nameTheirCodeAndMessage_inXMLAndJSON() {
        let xml = AWSError(
            status: 403, headers: [],
            body: Array("<Error><Code>AccessDenied</Code><Message>Access &amp; Denied</Message></Error>".utf8))
        #expect(xml == AWSError(status: 403, code: "AccessDenied", message: "Access & Denied"))
        #expect(xml.description == "AWS AccessDenied: Access & Denied (HTTP 403)")
        let json = AWSError(
            status: 400, headers: [],
            body: Array(#"{"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "gone"}"#.utf8))
        #expect(json.code == "QueueDoesNotExist" && json.message == "gone")
        let header = AWSError(
            status: 400, headers: [("x-amzn-ErrorType", "ResourceNotFoundException:http://internal/")],
            body: Array(#"{"Message": "no table"}"#.utf8))
        #expect(header.code == "ResourceNotFoundException" && header.message == "no table")
        let bare = AWSError(status: 404, headers: [], body: [])
        #expect(bare.code == "HTTP404")
    }

    @Test func throttling_isRetried_otherErrorsAreNot() {
        #expect(AWSError(status: 400, code: "ThrottlingException", message: "").isThrottling)
        #expect(AWSError(status: 503, code: "SlowDown", message: "").isThrottling)
        #expect(AWSError(status: 429, code: "HTTP429", message: "").isThrottling)
        #expect(AWSError(status: 500, code: "InternalError", message: "").isThrottling)
        #expect(!AWSError(status: 403, code: "SignatureDoesNotMatch", message: "").isThrottling)
        #expect(!AWSError(status: 400, code: "ResourceInUseException", message: "").isThrottling)
    }

    @Test func xmlText_readsElementsWithAndWithoutAttributes_andSelfClosedOnes() {
        let xml = #"<R><Code>A</Code><Tag a="1">x &lt; y</Tag><Empty/><Code>B</Code><Codex>no</Codex></R>"#
        #expect(XMLText.all("Code", in: xml) == ["A", "B"])
        #expect(XMLText.first("Tag", in: xml) == "x < y")
        #expect(XMLText.first("Empty", in: xml) == "")
        #expect(XMLText.first("Missing", in: xml) == nil)
        #expect(XMLText.first("C", in: "<C>1</C>") == "1", "an element at the very start")
        #expect(XMLText.escaped(#"<a & "b">"#) == "&lt;a &amp; &quot;b&quot;&gt;")
    }

    @Test func queryComponents_areEncodedAsSigV4Wants() {
        #expect(AWSClient.encode("a b/c~d_e.f-g") == "a%20b%2Fc~d_e.f-g")
        #expect(AWSClient.encode("ü") == "%C3%BC")
    }
}
