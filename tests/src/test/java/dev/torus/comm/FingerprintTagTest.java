package dev.torus.comm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.torus.DType;
import java.util.HashSet;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The properties of transport tags that the mismatch fence relies on. */
class FingerprintTagTest {
    private static Fingerprint random(SplittableRandom r) {
        OpType t = OpType.values()[r.nextInt(OpType.values().length)];
        return new Fingerprint(t, r.nextInt(-1, ReduceOp.values().length), DType.values()[r.nextInt(DType.values().length)],
                r.nextLong(0, 1L << 40), r.nextInt(-1, 64));
    }

    @Test
    void neighbouringOpsNeverShareATagWhateverTheirFingerprints() {
        SplittableRandom r = new SplittableRandom(dev.torus.testing.Data.freshSeed());
        for (int trial = 0; trial < 200; trial++) {
            long start = r.nextLong(0, 1L << 40);
            Set<Long> tags = new HashSet<>();
            for (long seq = start; seq < start + 4096; seq++) {
                long tag = random(r).wireTag(seq);
                assertEquals(seq & 0xfff, tag & 0xfff, "the low 12 bits are the sequence number");
                assertEquals(0, tag >>> 31, "bit 31 is reserved for internal exchanges");
                assertTrue(tags.add(tag), "seq " + seq + " reuses a tag of the previous 4,095 ops");
                for (int step = 0; step < 4; step++) {
                    long sub = Fingerprint.subTag(tag, step);
                    assertEquals(tag & 0xfff, sub & 0xfff);
                    assertEquals(0, sub >>> 31);
                }
                assertEquals(1, Fingerprint.exchangeTag(seq) >>> 31);
            }
        }
    }

    @Test
    void ranksThatDisagreeOnTheOpComputeDifferentTags() {
        long seq = 2;
        Fingerprint base = new Fingerprint(OpType.ALL_REDUCE, ReduceOp.SUM.ordinal(), DType.FLOAT32, 1000, -1);
        Fingerprint[] others = {
            new Fingerprint(OpType.ALL_REDUCE, ReduceOp.SUM.ordinal(), DType.FLOAT32, 1001, -1),
            new Fingerprint(OpType.ALL_REDUCE, ReduceOp.SUM.ordinal(), DType.INT32, 1000, -1),
            new Fingerprint(OpType.ALL_REDUCE, ReduceOp.MAX.ordinal(), DType.FLOAT32, 1000, -1),
            new Fingerprint(OpType.BROADCAST, -1, DType.FLOAT32, 1000, 1),
            new Fingerprint(OpType.ALL_GATHER, -1, DType.FLOAT32, 1000, -1),
        };
        for (Fingerprint o : others) {
            assertNotEquals(base.wireTag(seq), o.wireTag(seq), o.describe());
        }
        assertNotEquals(base.wireTag(seq), base.wireTag(seq + 1), "a rank one op ahead");
        assertEquals(base.wireTag(seq), new Fingerprint(OpType.ALL_REDUCE, ReduceOp.SUM.ordinal(), DType.FLOAT32, 1000,
                -1).wireTag(seq), "agreeing ranks meet");
    }
}
