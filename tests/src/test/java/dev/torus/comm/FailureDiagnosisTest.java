package dev.torus.comm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/** What a peer (or anyone with store access) wrote is never copied raw into an exception message. */
class FailureDiagnosisTest {
    @Test
    void peerRecordsAreCappedAndMadePrintable() {
        byte[] hostile = new byte[2048];
        for (int i = 0; i < hostile.length; i++) {
            hostile[i] = (byte) (i % 7 == 0 ? '\n' : i);
        }
        String s = FailureDiagnosis.printable(hostile);
        assertTrue(s.length() <= FailureDiagnosis.MAX_REPORT_CHARS + 3, "length " + s.length());
        assertTrue(s.endsWith("..."));
        for (char c : s.toCharArray()) {
            assertTrue(c >= 0x20 && c < 0x7f, "unprintable char " + (int) c);
        }
        assertEquals("allReduce(SUM) of 3 x FLOAT32",
                FailureDiagnosis.printable("allReduce(SUM) of 3 x FLOAT32".getBytes(StandardCharsets.UTF_8)));
    }
}
