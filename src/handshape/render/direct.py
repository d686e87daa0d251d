"""A few raw OpenGL calls a frame for the synthetic data: one shader, one buffer, one framebuffer.

pyrender rebuilds a scene graph, vertex arrays and every uniform for each frame, about 170 GL
calls through PyOpenGL; on a CPU rasteriser that Python costs more than the drawing itself.
This draws the same thing with about 20 calls: the vertices of all parts in one interleaved
buffer (position, normal, linear albedo, part id, roughness), one draw, two read-backs. The
shading is the usual metallic-roughness model with metalness 0 (Schlick Fresnel from a
dielectric 4 % reflectance, Smith-Schlick geometry, GGX distribution), the light conventions of
pyrender (directional: intensity as radiance; point and spot: intensity over squared distance;
spot cones smooth between half and full angle) so that the lighting set-ups keep their meaning,
and the output gamma 1/2.2. The GL context itself comes from pyrender's platform layer
(EGL or OSMesa, `handshape.render.backend`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

_VERTEX = """
#version 330 core
layout(location = 0) in vec3 position;
layout(location = 1) in vec3 normal;
layout(location = 2) in vec4 albedo_id;
layout(location = 3) in float roughness;
uniform mat4 projection;
out vec3 frag_position;
out vec3 frag_normal;
out vec4 frag_albedo_id;
out float frag_roughness;
void main() {
    frag_position = position;
    frag_normal = normal;
    frag_albedo_id = albedo_id;
    frag_roughness = roughness;
    gl_Position = projection * vec4(position, 1.0);
}
"""

_FRAGMENT = """
#version 330 core
#define MAX_LIGHTS 4
const float PI = 3.141592653589793;
in vec3 frag_position;
in vec3 frag_normal;
in vec4 frag_albedo_id;
in float frag_roughness;
uniform int n_lights;
uniform int kind[MAX_LIGHTS];          // 0 directional, 1 point, 2 spot
uniform vec3 direction[MAX_LIGHTS];    // where the light travels (camera frame)
uniform vec3 light_position[MAX_LIGHTS];
uniform vec3 radiance[MAX_LIGHTS];     // colour x intensity
uniform vec2 cone[MAX_LIGHTS];         // spot: cos(inner), cos(outer)
uniform vec3 ambient;
out vec4 frag_color;
void main() {
    vec3 albedo = frag_albedo_id.rgb;
    float r = clamp(frag_roughness, 0.04, 1.0);
    vec3 n = normalize(frag_normal);
    vec3 v = normalize(-frag_position);
    vec3 c_diff = albedo * 0.96;
    vec3 color = albedo * ambient;
    for (int i = 0; i < n_lights; i++) {
        vec3 l;
        vec3 li = radiance[i];
        if (kind[i] == 0) {
            l = normalize(-direction[i]);
        } else {
            vec3 to_light = light_position[i] - frag_position;
            float d2 = dot(to_light, to_light);
            l = to_light / sqrt(d2);
            li /= d2;
            if (kind[i] == 2) {
                float cd = dot(normalize(direction[i]), -l);
                float s = clamp((cd - cone[i].y) / max(cone[i].x - cone[i].y, 0.001), 0.0, 1.0);
                li *= s * s;
            }
        }
        vec3 h = normalize(l + v);
        float nl = clamp(dot(n, l), 0.001, 1.0);
        float nv = clamp(abs(dot(n, v)), 0.001, 1.0);
        float nh = clamp(dot(n, h), 0.0, 1.0);
        float vh = clamp(dot(v, h), 0.0, 1.0);
        vec3 f = vec3(0.04) + 0.96 * pow(1.0 - vh, 5.0);
        float k = (r + 1.0) * (r + 1.0) / 8.0;
        float g = nv / (nv * (1.0 - k) + k) * nl / (nl * (1.0 - k) + k);
        float a2 = r * r * r * r;
        float den = nh * nh * (a2 - 1.0) + 1.0;
        float dist = a2 / (PI * den * den);
        vec3 spec = f * g * dist / (4.0 * nl * nv + 0.001);
        color += nl * li * ((1.0 - f) * c_diff / PI + spec);
    }
    frag_color = vec4(pow(clamp(color, 0.0, 1.0), vec3(1.0 / 2.2)), frag_albedo_id.a);
}
"""

_KINDS = {"directional": 0, "point": 1, "spot": 2}
MAX_LIGHTS = 4


def projection_matrix(K: np.ndarray, size: int, znear: float, zfar: float) -> np.ndarray:
    """(4, 4) OpenGL projection of the OpenCV intrinsics K of a size x size crop (pixel centres
    at integers), for points in the OpenGL camera frame (x right, y up, looking along -z)."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2] + 0.5, K[1, 2] + 0.5
    p = np.zeros((4, 4))
    p[0, 0] = 2 * fx / size
    p[0, 2] = 1 - 2 * cx / size
    p[1, 1] = 2 * fy / size
    p[1, 2] = 2 * cy / size - 1
    p[2, 2] = -(zfar + znear) / (zfar - znear)
    p[2, 3] = -2 * zfar * znear / (zfar - znear)
    p[3, 2] = -1
    return p


class DirectDraw:
    """Owns a program, a vertex and index buffer and a single-sampled framebuffer of size x size
    in the current GL context (make it current before every call)."""

    def __init__(self, size: int) -> None:
        from OpenGL import GL
        from OpenGL.GL import shaders

        self.gl = GL
        self.size = size
        self.program = shaders.compileProgram(
            shaders.compileShader(_VERTEX, GL.GL_VERTEX_SHADER),
            shaders.compileShader(_FRAGMENT, GL.GL_FRAGMENT_SHADER),
            validate=False,
        )
        self.vao = GL.glGenVertexArrays(1)
        self.vbo, self.ebo = GL.glGenBuffers(2)
        GL.glBindVertexArray(self.vao)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.vbo)
        GL.glBindBuffer(GL.GL_ELEMENT_ARRAY_BUFFER, self.ebo)
        stride = 11 * 4
        for location, (count, offset) in enumerate(((3, 0), (3, 3), (4, 6), (1, 10))):
            GL.glEnableVertexAttribArray(location)
            GL.glVertexAttribPointer(
                location, count, GL.GL_FLOAT, False, stride, GL.GLvoidp(offset * 4)
            )
        GL.glBindVertexArray(0)
        self.fbo = GL.glGenFramebuffers(1)
        self.colour, self.depth = GL.glGenRenderbuffers(2)
        GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, self.colour)
        GL.glRenderbufferStorage(GL.GL_RENDERBUFFER, GL.GL_RGBA8, size, size)
        GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, self.depth)
        GL.glRenderbufferStorage(GL.GL_RENDERBUFFER, GL.GL_DEPTH_COMPONENT24, size, size)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.fbo)
        GL.glFramebufferRenderbuffer(
            GL.GL_FRAMEBUFFER, GL.GL_COLOR_ATTACHMENT0, GL.GL_RENDERBUFFER, self.colour
        )
        GL.glFramebufferRenderbuffer(
            GL.GL_FRAMEBUFFER, GL.GL_DEPTH_ATTACHMENT, GL.GL_RENDERBUFFER, self.depth
        )
        status = GL.glCheckFramebufferStatus(GL.GL_FRAMEBUFFER)
        if status != GL.GL_FRAMEBUFFER_COMPLETE:
            raise RuntimeError(f"OpenGL framebuffer incomplete (status {status:#x})")
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
        self.uniforms = {
            name: GL.glGetUniformLocation(self.program, name)
            for name in (
                "projection", "n_lights", "kind", "direction", "light_position", "radiance",
                "cone", "ambient",
            )
        }  # fmt: skip

    def draw(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        projection: np.ndarray,
        lights: list[Any],
        ambient: np.ndarray,
        znear: float,
        zfar: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """vertices (N, 11) float32: OpenGL camera-frame position, normal, albedo, alpha,
        roughness; faces (F, 3). Returns colour (S, S, 4) uint8 and depth (S, S) float32, metres
        along the view axis, 0 where nothing was drawn; row 0 at the top."""
        GL, size = self.gl, self.size
        if len(lights) > MAX_LIGHTS:
            raise ValueError(f"at most {MAX_LIGHTS} lights, got {len(lights)}")
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.fbo)
        GL.glViewport(0, 0, size, size)
        GL.glClearColor(0.0, 0.0, 0.0, 0.0)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT | GL.GL_DEPTH_BUFFER_BIT)
        GL.glEnable(GL.GL_DEPTH_TEST)
        GL.glDepthFunc(GL.GL_LESS)
        GL.glEnable(GL.GL_CULL_FACE)
        GL.glCullFace(GL.GL_BACK)
        GL.glDisable(GL.GL_BLEND)
        GL.glUseProgram(self.program)
        u = self.uniforms
        GL.glUniformMatrix4fv(u["projection"], 1, GL.GL_TRUE, projection.astype(np.float32))
        kinds = np.zeros(MAX_LIGHTS, np.int32)
        arrays = {k: np.zeros((MAX_LIGHTS, 3), np.float32) for k in ("d", "p", "r")}
        cones = np.zeros((MAX_LIGHTS, 2), np.float32)
        for i, light in enumerate(lights):
            if light.kind not in _KINDS:
                raise ValueError(f"unknown light kind '{light.kind}'")
            kinds[i] = _KINDS[light.kind]
            arrays["d"][i] = light.direction
            arrays["p"][i] = light.position
            arrays["r"][i] = np.asarray(light.color) * light.intensity
            cones[i] = (np.cos(0.5 * light.cone), np.cos(light.cone))
        GL.glUniform1i(u["n_lights"], len(lights))
        GL.glUniform1iv(u["kind"], MAX_LIGHTS, kinds)
        GL.glUniform3fv(u["direction"], MAX_LIGHTS, arrays["d"])
        GL.glUniform3fv(u["light_position"], MAX_LIGHTS, arrays["p"])
        GL.glUniform3fv(u["radiance"], MAX_LIGHTS, arrays["r"])
        GL.glUniform2fv(u["cone"], MAX_LIGHTS, cones)
        GL.glUniform3fv(u["ambient"], 1, np.asarray(ambient, np.float32))
        GL.glBindVertexArray(self.vao)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.vbo)
        GL.glBufferData(GL.GL_ARRAY_BUFFER, vertices.nbytes, vertices, GL.GL_STREAM_DRAW)
        indices = np.ascontiguousarray(faces, dtype=np.uint32)
        GL.glBufferData(GL.GL_ELEMENT_ARRAY_BUFFER, indices.nbytes, indices, GL.GL_STREAM_DRAW)
        GL.glDrawElements(GL.GL_TRIANGLES, indices.size, GL.GL_UNSIGNED_INT, None)
        GL.glBindVertexArray(0)
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
        colour = GL.glReadPixels(0, 0, size, size, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE)
        z = GL.glReadPixels(0, 0, size, size, GL.GL_DEPTH_COMPONENT, GL.GL_FLOAT)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
        colour = np.frombuffer(colour, np.uint8).reshape(size, size, 4)[::-1]
        z = np.frombuffer(z, np.float32).reshape(size, size)[::-1]
        drawn = z < 1.0
        ndc = 2.0 * z - 1.0
        depth = (2.0 * znear * zfar / (zfar + znear - ndc * (zfar - znear))).astype(np.float32)
        return np.ascontiguousarray(colour), np.where(drawn, depth, np.float32(0.0))
