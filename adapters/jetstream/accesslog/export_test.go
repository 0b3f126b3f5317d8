package accesslog

// WithDeletesAllowed is withDeletesAllowed, for the tests of this package.
var WithDeletesAllowed = withDeletesAllowed

// WithoutIndexing is withoutIndexing, for the tests of this package.
var WithoutIndexing = withoutIndexing
