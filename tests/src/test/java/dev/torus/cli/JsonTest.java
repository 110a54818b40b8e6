package dev.torus.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Benchmark figures keep every digit through the JSON writer. */
class JsonTest {
    @Test
    void numbersRoundTripExactly() {
        double t = 1234.5678901234;   // %.6g printed 1234.57
        double tiny = 3.0e-9;
        float f = 0.1f;               // must print 0.1, not 0.10000000149011612
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("time_us", t);
        m.put("tiny", tiny);
        m.put("loss", f);
        m.put("nan", Double.NaN);
        m.put("n", 42L);
        String json = Json.write(m);
        assertEquals("{\"time_us\":1234.5678901234,\"tiny\":3.0E-9,\"loss\":0.1,\"nan\":null,\"n\":42}", json);
        assertEquals(t, Double.parseDouble("1234.5678901234"));
        assertEquals("[1.0E10,-0.5]", Json.write(List.of(1e10, -0.5)));
    }
}
