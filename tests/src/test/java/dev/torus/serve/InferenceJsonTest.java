package dev.torus.serve;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/** The Open Inference Protocol JSON: what parses, and the 400 message for each thing that does not. */
class InferenceJsonTest {
    private final InferenceJson json = new InferenceJson("input", 3, 4);

    private InferenceJson.Request parse(String s) {
        return json.parse(new ByteArrayInputStream(s.getBytes(StandardCharsets.UTF_8)));
    }

    private String refused(String s) {
        return assertThrows(InferenceJson.BadRequestException.class, () -> parse(s)).getMessage();
    }

    @Test
    void flatNestedAndShapeAfterData() {
        float[] want = {1, 2, 3, 4.5f, -5, 6e-3f};
        assertArrayEquals(want, parse("{\"inputs\":[{\"name\":\"input\",\"shape\":[2,3],\"datatype\":\"FP32\","
                + "\"data\":[1,2,3,4.5,-5,6e-3]}]}").data());
        assertArrayEquals(want, parse("{\"id\":\"a\",\"inputs\":[{\"name\":\"input\",\"shape\":[2,3],\"datatype\":\"FP32\","
                + "\"data\":[[1,2,3],[4.5,-5,6e-3]]}],\"parameters\":{\"x\":[1,{}]}}").data());
        InferenceJson.Request r = parse("{\"inputs\":[{\"data\":[1,2,3,4.5,-5,6e-3],\"datatype\":\"FP32\","
                + "\"name\":\"input\",\"shape\":[2,3]}],\"id\":\"req-7\"}");
        assertArrayEquals(want, r.data());
        assertEquals(2, r.rows());
        assertEquals("req-7", r.id());
    }

    @Test
    void everyBadRequestNamesItsField() {
        assertTrue(refused("{\"inputs\":[").contains("malformed JSON"));
        assertTrue(refused("[1]").contains("JSON object"));
        assertTrue(refused("{}").contains("\"inputs\" is missing"));
        assertTrue(refused("{\"inputs\":{}}").contains("\"inputs\" must be an array"));
        String ok = "\"shape\":[1,3],\"datatype\":\"FP32\",\"data\":[1,2,3]";
        assertTrue(refused("{\"inputs\":[{\"name\":\"x\"," + ok + "}]}").contains("\"name\" must be \"input\""));
        assertTrue(refused("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,3],\"datatype\":\"INT8\",\"data\":[1,2,3]}]}")
                .contains("\"datatype\" must be \"FP32\""));
        assertTrue(refused("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,5],\"datatype\":\"FP32\",\"data\":[1,2,3,4,5]}]}")
                .contains("takes 3 features, got 5"));
        assertTrue(refused("{\"inputs\":[{\"name\":\"input\",\"shape\":[9,3],\"datatype\":\"FP32\",\"data\":[1]}]}")
                .contains("rows) must be in [1, 4], got 9"));
        assertTrue(refused("{\"inputs\":[{\"name\":\"input\",\"shape\":[0,3],\"datatype\":\"FP32\",\"data\":[]}]}")
                .contains("got 0"));
        assertTrue(refused("{\"inputs\":[{\"name\":\"input\",\"shape\":[2,3],\"datatype\":\"FP32\",\"data\":[1,2,3]}]}")
                .contains("holds 3 numbers; shape 2x3 needs 6"));
        assertTrue(refused("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,3],\"datatype\":\"FP32\",\"data\":[1,2,\"3\"]}]}")
                .contains("\"data\"[2] must be a number"));
        assertTrue(refused("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,3],\"datatype\":\"FP32\",\"data\":[1,2,NaN]}]}")
                .contains("malformed JSON"), "NaN is not JSON and is refused");
        assertTrue(refused("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,3],\"datatype\":\"FP32\",\"data\":[1,2,1e39]}]}")
                .contains("not a finite float32"));
        assertTrue(refused("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,3],\"datatype\":\"FP32\",\"data\":[1,2,3,4]}]}")
                .contains("more than"));
        assertTrue(refused("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,3],\"datatype\":\"FP32\",\"data\":[1,2,3]},"
                + "{\"name\":\"input\"}]}").contains("exactly one"));
        assertTrue(refused("{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"data\":[1,2,3]}]}")
                .contains("\"shape\" is missing"));
        assertTrue(refused("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,3],\"datatype\":\"FP32\",\"data\":[[[[1]]]]}]}")
                .contains("nests too deeply"));
        assertTrue(refused("{\"inputs\":[{\"name\":\"input\",\"shape\":[2,3],\"datatype\":\"FP32\",\"data\":[[1,2],[3,4,5,6]]}]}")
                .contains("row 0 holds 2 numbers; the model takes 3"), "ragged rows");
        assertTrue(refused("{\"inputs\":[{\"name\":\"input\",\"shape\":[2,3],\"datatype\":\"FP32\",\"data\":[1,2,3,[4,5,6]]}]}")
                .contains("mixes numbers and rows"));
        assertTrue(refused("{\"inputs\":[{\"name\":\"input\",\"shape\":[2,3],\"datatype\":\"FP32\",\"data\":[[1,2,3]]}]}")
                .contains("holds 1 rows"));
        assertTrue(refused("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,3],\"datatype\":\"FP32\",\"data\":[1,2,\"x\"]}]}")
                .contains("must be a number, got a string"));
        assertTrue(refused("{\"inputs\":[{\"name\":\"input\"," + ok + "}],\"inputs\":[]}").contains("appears twice"));
        assertTrue(refused("{\"inputs\":[{\"name\":\"input\"," + ok + "}]} {}").contains("after the JSON object"));
    }

    @Test
    void responseHasLogitsAndArgMax() {
        String r = new String(json.response("m", "id1", 2, 3, new float[] {0, 2, 1, 5, -1, 4}), StandardCharsets.UTF_8);
        assertTrue(r.contains("\"model_name\":\"m\""), r);
        assertTrue(r.contains("\"id\":\"id1\""), r);
        assertTrue(r.contains("\"shape\":[2,3]") && r.contains("\"data\":[0.0,2.0,1.0,5.0,-1.0,4.0]"), r);
        assertTrue(r.contains("\"name\":\"class\",\"datatype\":\"INT64\",\"shape\":[2],\"data\":[1,0]"), r);
    }
}
