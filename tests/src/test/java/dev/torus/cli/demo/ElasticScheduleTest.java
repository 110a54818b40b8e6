package dev.torus.cli.demo;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class ElasticScheduleTest {

    @Test
    void theDefaultParsesAndPassesThroughTwoToFourWorkers() {
        ElasticSchedule s = ElasticSchedule.parse(ElasticSchedule.DEFAULT, 256, 8);
        assertEquals(2, s.start());
        assertEquals(ElasticSchedule.DEFAULT, s.spec());
        assertArrayEquals(new int[] {2, 4}, s.worldRange());
        assertEquals(List.of(2, 3, 4, 3, 2), List.of(s.plannedWorldBefore(0), s.plannedWorldBefore(1),
                s.plannedWorldBefore(2), s.plannedWorldBefore(3), s.plannedWorldBefore(4)));
    }

    @Test
    void eventsAreOrderedByStepAndKeepTheirWrittenOrderWithinAStep() {
        ElasticSchedule s = ElasticSchedule.parse(" kill@9:0 , start=3, join@4, leave@9, join@2 ", 100, 8);
        assertEquals("start=3,join@2,join@4,kill@9:0,leave@9", s.spec());
        assertEquals(-1, s.events().get(3).rank());
        assertEquals(0, s.events().get(2).rank());
        // no start= means two workers
        assertEquals(2, ElasticSchedule.parse("join@3", 10, 8).start());
    }

    @Test
    void badSchedulesNameTheItem() {
        assertMessage("must not be empty", " ");
        assertMessage("start= twice", "start=2,start=3");
        assertMessage("'start=0': start must be in [1, 8]", "start=0");
        assertMessage("'start=two'", "start=two");
        assertMessage("'hop@3'", "hop@3");
        assertMessage("'join3' must be start=N", "join3");
        assertMessage("'kill@3:-1'", "kill@3:-1");
        assertMessage("the step must be in [1, 99]", "join@100");
        assertMessage("the step must be in [1, 99]", "join@0");
        assertMessage("'kill@5:2': there will be only 2 workers", "start=2,kill@5:2");
        assertMessage("would make 9 workers", "start=8,join@1");
        assertMessage("would leave no worker", "start=2,kill@1,leave@2");
        assertMessage("rank 1 is already stopped", "start=3,kill@5:1,kill@5:1");
        assertMessage("would leave no worker of the running job", "start=1,join@3,kill@3:0");
        // ranks of one step are those of the world when the step is reached
        assertEquals("start=3,kill@5:0,kill@5:2", ElasticSchedule.parse("start=3,kill@5:0,kill@5:2", 100, 8).spec());
    }

    private static void assertMessage(String expected, String spec) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ElasticSchedule.parse(spec, 100, 8));
        assertTrue(e.getMessage().contains(expected) && e.getMessage().contains("--schedule"),
                "'" + e.getMessage() + "' must contain " + expected);
    }
}
