/**
 * The JNI bindings of Torus's native kernels and of its Gloo shim. Every method here takes raw
 * addresses, so the package is exported to the {@code dev.torus} module only: code outside Torus
 * cannot call it when both are on the module path. (On the class path no module boundary exists.)
 */
module dev.torus.jni {
    requires org.bytedeco.javacpp;
    requires org.bytedeco.openblas;
    requires org.bytedeco.cuda;

    exports dev.torus.jni to dev.torus;
    // JavaCPP's loader reads the binding classes reflectively
    opens dev.torus.jni to org.bytedeco.javacpp;
}
