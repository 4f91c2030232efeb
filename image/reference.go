package image

import (
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// Reference is a parsed, normalized image reference.
type Reference struct {
	Domain string        // registry host, "docker.io" for Docker Hub
	Path   string        // repository path, "library/busybox"
	Tag    string        // "" when pulled by digest
	Digest digest.Digest // "" when pulled by tag
}

// ErrInvalidReference wraps every reference parse error.
var ErrInvalidReference = fmt.Errorf("invalid image reference: %w", errdefs.ErrInvalidArgument)

// ParseReference applies Docker's defaults: a missing registry is docker.io,
// a one-part Docker Hub name gets library/, a missing tag is :latest. A
// reference with both a tag and a digest ("name:tag@sha256:...") is pulled by
// its digest, as Docker does. Uppercase repository names are refused.
func ParseReference(s string) (Reference, error) {
	named, err := reference.ParseDockerRef(s)
	if err != nil {
		return Reference{}, fmt.Errorf("%q: %v: %w", s, err, ErrInvalidReference)
	}
	r := Reference{Domain: reference.Domain(named), Path: reference.Path(named)}
	if d, ok := named.(reference.Digested); ok {
		r.Digest = d.Digest()
		if err := r.Digest.Validate(); err != nil {
			return Reference{}, fmt.Errorf("%q: %v: %w", s, err, ErrInvalidReference)
		}
	} else if t, ok := named.(reference.Tagged); ok {
		r.Tag = t.Tag()
	}
	return r, nil
}

// Name is the repository without tag or digest: "docker.io/library/busybox".
func (r Reference) Name() string { return r.Domain + "/" + r.Path }

// Object is the tag or digest the registry is asked for.
func (r Reference) Object() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// String is the full normalized reference, used as the image name.
func (r Reference) String() string {
	if r.Digest != "" {
		return r.Name() + "@" + r.Digest.String()
	}
	return r.Name() + ":" + r.Tag
}

// Familiar is the short form users type: "busybox:latest".
func (r Reference) Familiar() string {
	named, err := reference.ParseNormalizedNamed(r.String())
	if err != nil {
		return r.String()
	}
	return reference.FamiliarString(named)
}
